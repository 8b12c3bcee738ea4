import { readFileSync } from 'node:fs';

/**
 * taskgate's version, from its package.json: one folder up from src/ in a clone (tsx), two from
 * dist/src/ in a build. Read once at start-up.
 */
function readVersion(): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8'));
      if (pkg.name === 'taskgate' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next folder up
    }
  }
  return 'unknown';
}

export const VERSION = readVersion();
