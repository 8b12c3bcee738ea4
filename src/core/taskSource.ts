import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { TaskgateError } from '../errors.js';

/**
 * Where the code of a project's own task modules is loaded from. JavaScript modules are imported
 * as they are. TypeScript ones are imported from their compiled copy in `.taskgate/build/` (the
 * same path under it as under the project), which `taskgate build` writes after type-checking
 * them; outside production a copy that is missing or older than its source is compiled here
 * first, with the project's own TypeScript, so that `taskgate run` just works while a task is
 * being written. In production nothing is compiled at start: a missing or stale copy stops
 * start-up, naming `taskgate build`. (Under tsx, as in taskgate's own repository, TypeScript is
 * imported directly.)
 */

/** The compiled copies, relative to the project's root. */
export const BUILD_DIR = '.taskgate/build';

const TYPESCRIPT = /\.(ts|mts)$/;
const DECLARATION = /\.d\.[mc]?ts$/;

/** Running from source under tsx: TypeScript modules import as they are. */
const UNDER_TSX = import.meta.url.endsWith('.ts');

const isTypeScript = (file: string) => TYPESCRIPT.test(file) && !DECLARATION.test(file);

/** Where `source` (a file of the project) is compiled to. */
function compiledPath(root: string, source: string): string {
  const relative = path
    .relative(root, source)
    .replace(/\.ts$/, '.js')
    .replace(/\.mts$/, '.mjs');
  return path.join(root, BUILD_DIR, relative);
}

/** Every TypeScript source under `dir`, helpers in `_` folders included (not node_modules). */
export function typeScriptSources(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && isTypeScript(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name))
    .filter((file) => !file.split(path.sep).includes('node_modules'))
    .sort();
}

const isStale = (root: string, source: string) => {
  const compiled = compiledPath(root, source);
  return !existsSync(compiled) || statSync(compiled).mtimeMs < statSync(source).mtimeMs;
};

/** The project's TypeScript compiler (its devDependency), or null when it has none. */
export function projectTypeScript(root: string): typeof import('typescript') | null {
  try {
    return createRequire(path.join(root, 'package.json'))('typescript');
  } catch {
    return null;
  }
}

/**
 * Makes sure the TypeScript sources of a project's tasks folder have current compiled copies:
 * outside production, compiles the stale ones (types are checked by `taskgate build`, not here);
 * in production, refuses to start with any stale. Nothing to do under tsx or for JavaScript.
 */
export function prepareTaskSources(options: { root: string; tasksDir: string; production: boolean }): void {
  if (UNDER_TSX) return;
  const { root, tasksDir, production } = options;
  const stale = typeScriptSources(tasksDir).filter((source) => isStale(root, source));
  if (stale.length === 0) return;
  const shown = path.relative(process.cwd(), stale[0]!) || stale[0]!;
  if (production) {
    throw new TaskgateError(
      'CONFIG_INVALID',
      `${shown}${stale.length > 1 ? ` (and ${stale.length - 1} more)` : ''} has not been built since it changed: ` +
        'run `taskgate build` (the build command of the deploy) before starting',
    );
  }
  const ts = projectTypeScript(root);
  if (!ts) {
    throw new TaskgateError(
      'CONFIG_INVALID',
      `${shown} is TypeScript, and this project has no TypeScript compiler: \`npm install --save-dev typescript\`, ` +
        'or write the task in JavaScript',
    );
  }
  for (const source of stale) {
    const output = ts.transpileModule(readFileSync(source, 'utf8'), {
      fileName: source,
      // A project's tasks are ES modules ("type": "module", as `taskgate init` writes it).
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        sourceMap: false,
        inlineSourceMap: true,
        inlineSources: true,
      },
    });
    const target = compiledPath(root, source);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, output.outputText);
  }
}

/** The file to import for a task module of the project (its compiled copy for TypeScript). */
export function moduleFile(root: string, source: string): string {
  return !UNDER_TSX && isTypeScript(source) ? compiledPath(root, source) : source;
}
