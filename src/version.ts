import { readFileSync } from 'node:fs';

/**
 * taskgate's version, from its package.json: one folder up from src/ in a clone (tsx), three up
 * from dist/src/chunks/ in a build (scripts/build.mjs). Read once at start-up.
 */
function readVersion(): string {
  for (const candidate of ['../package.json', '../../../package.json']) {
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
