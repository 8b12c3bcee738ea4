import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.js';
import { loadConfiguredTasks } from '../core/registry.js';
import { BUILD_DIR, projectTypeScript, typeScriptSources } from '../core/taskSource.js';
import { TaskgateError } from '../errors.js';

/**
 * `taskgate build`, the build command of a project's deploy: type-checks the project's TypeScript
 * with its own compiler and tsconfig.json, so that a type error fails the deploy naming its file
 * and line, compiles it to `.taskgate/build/`, where `taskgate serve` loads it from, and then
 * loads every task as start-up will, so that a malformed task fails the build too.
 */
export interface BuildReport {
  /** TypeScript files compiled. */
  compiled: number;
  /** The tasks the project registers, as `serve` will. */
  tasks: string[];
}

/** The settings a project gets when it has no tsconfig.json of its own (those `taskgate init` writes). */
export const PROJECT_COMPILER_OPTIONS = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  strict: true,
  noUncheckedIndexedAccess: true,
  skipLibCheck: true,
  types: ['node'],
  noEmit: true,
} as const;

export async function buildProject(config: Config): Promise<BuildReport> {
  const { project } = config;
  const tasksDir = project.tasksDir;
  const sources = tasksDir && existsSync(tasksDir) ? typeScriptSources(tasksDir) : [];
  let compiled = 0;
  if (tasksDir && sources.length > 0) compiled = await compile(project.root, tasksDir);
  const registry = await loadConfiguredTasks({ ...config, env: 'production' });
  return { compiled, tasks: registry.names() };
}

async function compile(root: string, tasksDir: string): Promise<number> {
  const ts = projectTypeScript(root);
  if (!ts) {
    throw new TaskgateError(
      'BUILD_FAILED',
      'the project has TypeScript tasks and no TypeScript compiler: `npm install --save-dev typescript` ' +
        '(a deploy installs dev dependencies for the build: `npm ci --include=dev`)',
    );
  }
  const configFile = path.join(root, 'tsconfig.json');
  let fileNames: string[];
  let options: import('typescript').CompilerOptions;
  if (existsSync(configFile)) {
    const read = ts.readConfigFile(configFile, ts.sys.readFile);
    if (read.error) throw buildFailed(ts, [read.error], root);
    const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, root, undefined, configFile);
    if (parsed.errors.length > 0) throw buildFailed(ts, parsed.errors, root);
    fileNames = parsed.fileNames;
    options = parsed.options;
  } else {
    const parsed = ts.convertCompilerOptionsFromJson(PROJECT_COMPILER_OPTIONS, root);
    fileNames = typeScriptSources(tasksDir);
    options = parsed.options;
  }
  const outDir = path.join(root, BUILD_DIR);
  const program = ts.createProgram(fileNames, {
    ...options,
    noEmit: false,
    outDir,
    rootDir: root,
    declaration: false,
    declarationMap: false,
    emitDeclarationOnly: false,
    composite: false,
    incremental: false,
    sourceMap: false,
    inlineSourceMap: true,
    inlineSources: true,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.some((d) => d.category === ts.DiagnosticCategory.Error)) {
    throw buildFailed(ts, diagnostics, root);
  }
  // A task deleted since the last build must not be loaded from its old copy.
  await rm(outDir, { recursive: true, force: true });
  const emitted = program.emit();
  if (emitted.emitSkipped) throw buildFailed(ts, emitted.diagnostics, root);
  return program
    .getSourceFiles()
    .filter((file) => !file.isDeclarationFile && !program.isSourceFileFromExternalLibrary(file)).length;
}

function buildFailed(
  ts: typeof import('typescript'),
  diagnostics: readonly import('typescript').Diagnostic[],
  root: string,
): TaskgateError {
  const errors = diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
  const text = ts.formatDiagnostics(errors, {
    getCanonicalFileName: (file) => file,
    getCurrentDirectory: () => root,
    getNewLine: () => '\n',
  });
  return new TaskgateError(
    'BUILD_FAILED',
    `${errors.length} type error${errors.length === 1 ? '' : 's'} in the project's tasks:\n${text.trimEnd()}`,
    { errors: errors.length },
  );
}
