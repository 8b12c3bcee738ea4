import { readFileSync } from 'node:fs';

/**
 * The bash of the generated workflow's steps, kept as real scripts in ./scripts/ so that
 * shellcheck reads them and they run by hand. A step gets its file without the header (everything
 * above the first blank line: shebang, notes, `set -eo pipefail`, which GitHub's `shell: bash`
 * sets itself), with each `source .../<file>.sh` line replaced by that file's body, so the
 * workflow needs nothing but its own text. The build copies ./scripts/ to dist/src/scheduling/,
 * and the path is written from one folder up so that it holds wherever the bundle puts this code.
 */
export type StepScript = 'plan' | 'wake' | 'trigger' | 'keepalive';

const SOURCE_LINE = /^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/([\w-]+\.sh)"$/;
const SOURCE_DIRECTIVE = /^# shellcheck source=/;

function body(file: string): string {
  const text = readFileSync(new URL(`../scheduling/scripts/${file}`, import.meta.url), 'utf8');
  const blank = text.indexOf('\n\n');
  if (!text.startsWith('#!') || blank < 0) throw new Error(`${file} has no header ending in a blank line`);
  return text.slice(blank + 2);
}

/** The `run:` text of one step. */
export function stepScript(name: StepScript): string {
  const lines: string[] = [];
  for (const line of body(`${name}.sh`).split('\n')) {
    const sourced = SOURCE_LINE.exec(line);
    if (sourced) {
      if (SOURCE_DIRECTIVE.test(lines.at(-1) ?? '')) lines.pop();
      lines.push(body(sourced[1]!).replace(/\n$/, ''));
    } else {
      lines.push(line);
    }
  }
  return lines.join('\n');
}
