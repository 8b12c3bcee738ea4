import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { type Config, ConfigError } from '../config.js';
import { TaskgateError } from '../errors.js';
import type { Project, TaskOverrides } from '../projectFile.js';
import type { AnyTask } from '../task.js';
import { Schedule } from './schedule.js';
import { moduleFile, prepareTaskSources } from './taskSource.js';

/**
 * taskgate's built-in tasks: `tasks/` beside `src/` in a clone (tsx), `dist/tasks/` in the package
 * (compiled: this module's chunk sits two folders below dist/ too). A project chooses which of them
 * run in its taskgate.config.json.
 */
export const BUILTIN_TASKS_DIR = fileURLToPath(new URL('../../tasks/', import.meta.url));

export const TASK_NAME = /^[a-z0-9_]+$/;

export interface RegisteredTask {
  definition: AnyTask;
  /** The params schema, strict: unknown keys are refused even if the task forgot to say so. */
  params: z.ZodObject;
  /** Parsed schedule, or null for on-demand tasks. */
  schedule: Schedule | null;
  /** The task's settings, read from the environment when it was loaded (defaults when none is given). */
  settings: Record<string, unknown>;
  file: string;
}

/** Every task of a `tasks/` folder, by name. Built once at start-up; looked up on every run. */
export class Registry {
  private readonly tasks: Map<string, RegisteredTask>;

  constructor(tasks: RegisteredTask[]) {
    this.tasks = new Map(tasks.map((t) => [t.definition.name, t]));
  }

  get(name: string): RegisteredTask | undefined {
    return this.tasks.get(name);
  }

  /** The task of that name, or TASK_NOT_FOUND listing the names there are. */
  require(name: string): RegisteredTask {
    const task = this.tasks.get(name);
    if (!task) {
      throw new TaskgateError('TASK_NOT_FOUND', `no task named "${name}"`, { tasks: this.names() });
    }
    return task;
  }

  names(): string[] {
    return [...this.tasks.keys()].sort();
  }

  list(): RegisteredTask[] {
    return this.names().map((name) => this.tasks.get(name)!);
  }
}

function isTaskModule(file: string): boolean {
  return /\.(ts|js|mts|mjs)$/.test(file) && !/\.d\.[mc]?ts$/.test(file) && !file.startsWith('_');
}

function invalid(file: string, problem: string): TaskgateError {
  return new TaskgateError('INVALID_TASK', `${file.includes('/') ? file : `tasks/${file}`}: ${problem}`, {
    file,
  });
}

/** Where a project's overrides of a task come from, for the messages that name them. */
export interface Overrides extends TaskOverrides {
  /** `taskgate.config.json`, as it is shown in messages. */
  from: string;
}

/** Checks one module's export against the task contract; throws naming the file. */
export function validateTask(
  file: string,
  exported: unknown,
  env: Readonly<Record<string, string | undefined>> = {},
  overrides?: Overrides,
): RegisteredTask {
  const task = exported as Partial<AnyTask> | undefined;
  const expected = path.basename(file).replace(/\.[^.]+$/, '');
  if (!task || typeof task !== 'object')
    throw invalid(file, 'has no default export (export default defineTask({...}))');
  if (typeof task.name !== 'string' || !TASK_NAME.test(task.name)) {
    throw invalid(file, `name ${JSON.stringify(task.name)} must match ${TASK_NAME}`);
  }
  if (task.name !== expected)
    throw invalid(file, `name "${task.name}" must equal the file name "${expected}"`);
  if (typeof task.description !== 'string' || task.description.trim() === '') {
    throw invalid(file, 'description must be a sentence');
  }
  if (typeof task.run !== 'function') throw invalid(file, 'run(ctx) must be a function');
  if (!(task.params instanceof z.ZodObject))
    throw invalid(file, 'params must be a z.strictObject({...}) schema');
  if (!task.params.safeParse({}).success)
    throw invalid(file, 'params must parse {} (give every field a default)');
  for (const alias of task.aliases ?? []) {
    if (
      typeof alias?.path !== 'string' ||
      !/^\/[A-Za-z0-9/_.-]*$/.test(alias.path) ||
      alias.path.startsWith('/cron')
    )
      throw invalid(file, `alias ${JSON.stringify(alias?.path)} must be a path of its own (not under /cron)`);
  }
  if (task.settings !== undefined && !(task.settings instanceof z.ZodObject))
    throw invalid(file, 'settings must be a z.object({...}) schema of environment variables');
  for (const hook of ['check', 'prepareDevDatabase'] as const) {
    if (task[hook] !== undefined && typeof task[hook] !== 'function') {
      throw invalid(file, `${hook} must be a function when given`);
    }
  }
  if (task.timeoutMs !== undefined && !(Number.isInteger(task.timeoutMs) && task.timeoutMs > 0)) {
    throw invalid(file, 'timeoutMs must be a positive integer');
  }
  if (
    task.queryTimeoutMs !== undefined &&
    !(Number.isInteger(task.queryTimeoutMs) && task.queryTimeoutMs > 0)
  ) {
    throw invalid(file, 'queryTimeoutMs must be a positive integer');
  }
  if (task.graceMs !== undefined && !(Number.isInteger(task.graceMs) && task.graceMs > 0)) {
    throw invalid(file, 'graceMs must be a positive integer');
  }
  if (task.timeZone !== undefined && typeof task.timeZone !== 'string') {
    throw invalid(file, 'timeZone must be an IANA time zone name, such as Europe/Berlin');
  }
  if (task.catchUp !== undefined && task.catchUp !== 'latest' && task.catchUp !== 'none') {
    throw invalid(file, "catchUp must be 'latest' or 'none'");
  }
  if (
    task.catchUpWindowMs !== undefined &&
    !(Number.isInteger(task.catchUpWindowMs) && task.catchUpWindowMs > 0)
  ) {
    throw invalid(file, 'catchUpWindowMs must be a positive integer');
  }
  const expression = overrides?.schedule !== undefined ? overrides.schedule : task.schedule;
  const timeZone = overrides?.timeZone ?? task.timeZone ?? null;
  let schedule: Schedule | null = null;
  if (expression !== null && expression !== undefined) {
    try {
      schedule = new Schedule(expression, timeZone);
    } catch (error) {
      if (overrides?.schedule || overrides?.timeZone) {
        throw overridden(
          overrides,
          task.name,
          overrides.timeZone ? 'timeZone' : 'schedule',
          (error as Error).message,
        );
      }
      throw invalid(file, `schedule ${(error as Error).message}`);
    }
  }
  // The project's overrides of the run policy become the definition the rest of taskgate reads.
  const definition: AnyTask = {
    ...(task as AnyTask),
    ...(overrides?.catchUp ? { catchUp: overrides.catchUp } : {}),
    ...(overrides?.catchUpWindowMs ? { catchUpWindowMs: overrides.catchUpWindowMs } : {}),
  };
  return {
    definition,
    params: withDefaults(definition, task.params.strict(), overrides),
    schedule,
    settings: readSettings(task as AnyTask, { ...overrides?.settings, ...env }),
    file,
  };
}

function overridden(overrides: Overrides, task: string, key: string, problem: string): ConfigError {
  return new ConfigError(`${overrides.from}: tasks.${task}.${key} ${problem}`);
}

/**
 * The params schema with the project's defaults in place of the task's own: a request's params
 * still win, and `taskgate list` and GET /cron show the defaults that apply here.
 */
function withDefaults(task: AnyTask, params: z.ZodObject, overrides: Overrides | undefined): z.ZodObject {
  const defaults = overrides?.params;
  if (!defaults || Object.keys(defaults).length === 0) return params;
  const shape: Record<string, z.ZodType> = {};
  for (const [key, value] of Object.entries(defaults)) {
    const field = params.shape[key] as z.ZodType | undefined;
    if (!field) {
      throw overridden(
        overrides,
        task.name,
        `params.${key}`,
        `is not a parameter of the task (it has: ${Object.keys(params.shape).join(', ') || 'none'})`,
      );
    }
    const parsed = field.safeParse(value);
    if (!parsed.success) {
      throw overridden(overrides, task.name, `params.${key}`, parsed.error.issues[0]!.message);
    }
    shape[key] = field.default(parsed.data as never);
  }
  return params.extend(shape);
}

/** The task's settings from the environment; a bad one is a configuration error naming the variable. */
function readSettings(task: AnyTask, env: Readonly<Record<string, string | undefined>>) {
  if (!task.settings) return {};
  const parsed = (task.settings as z.ZodObject).safeParse(env);
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const issue = parsed.error.issues[0]!;
  throw new ConfigError(
    `${issue.path.join('.')} ${issue.message.replace(/^Invalid input: /, '')} (a setting of task ${task.name})`,
  );
}

/** The module files of a folder of tasks, sorted. */
async function taskModules(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter(isTaskModule).sort();
}

async function importTask(
  dir: string,
  file: string,
  env: Readonly<Record<string, string | undefined>>,
  overrides?: Overrides,
  label = file,
  root?: string,
): Promise<RegisteredTask> {
  let module: Record<string, unknown>;
  const source = path.join(dir, file);
  try {
    module = await import(pathToFileURL(root ? moduleFile(root, source) : source).href);
  } catch (error) {
    throw invalid(label, `cannot be loaded: ${(error as Error).message}`);
  }
  return validateTask(label, module.default, env, overrides);
}

/** Imports every task module of a folder. A malformed or duplicate task stops start-up. */
export async function loadRegistry(
  dir: string = BUILTIN_TASKS_DIR,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<Registry> {
  const tasks: RegisteredTask[] = [];
  const seen = new Map<string, string>();
  for (const file of await taskModules(dir)) {
    const registered = await importTask(dir, file, env);
    const other = seen.get(registered.definition.name);
    if (other) throw invalid(file, `duplicates task "${registered.definition.name}" of tasks/${other}`);
    seen.set(registered.definition.name, file);
    tasks.push(registered);
  }
  return new Registry(tasks);
}

/** The names of taskgate's built-in tasks, whether a project chose them or not. */
export async function builtinTaskNames(): Promise<string[]> {
  return (await taskModules(BUILTIN_TASKS_DIR)).map((file) => file.replace(/\.[^.]+$/, ''));
}

/**
 * A project's tasks: the built-in tasks its config chooses and every module of its own tasks
 * folder, with the config's overrides applied. A built-in task it does not choose is not
 * registered. (taskgate's own repository says `"tasksDir": null`: its tasks/ are the built-in ones.)
 */
export async function loadProjectTasks(
  project: Project,
  env: Readonly<Record<string, string | undefined>> = {},
  options: { production?: boolean } = {},
): Promise<Registry> {
  const from = project.file ? path.relative(process.cwd(), project.file) || project.file : '';
  const overridesOf = (name: string): Overrides | undefined =>
    project.tasks[name] ? { ...project.tasks[name], from } : undefined;
  const tasksDir = project.tasksDir;
  const own = tasksDir && existsSync(tasksDir) ? await taskModules(tasksDir) : [];
  const shownDir = tasksDir ? path.relative(process.cwd(), tasksDir) || '.' : '';
  if (own.length > 0) {
    prepareTaskSources({
      root: project.root,
      tasksDir: tasksDir!,
      production: options.production ?? false,
    });
  }
  const tasks: RegisteredTask[] = [];
  const seen = new Map<string, string>();
  for (const file of own) {
    const label = `${shownDir}/${file}`;
    const name = file.replace(/\.[^.]+$/, '');
    const registered = await importTask(tasksDir!, file, env, overridesOf(name), label, project.root);
    const other = seen.get(registered.definition.name);
    if (other) throw invalid(label, `duplicates task "${registered.definition.name}" of ${other}`);
    seen.set(registered.definition.name, label);
    tasks.push(registered);
  }
  const builtins = await taskModules(BUILTIN_TASKS_DIR);
  const builtinFile = new Map(builtins.map((file) => [file.replace(/\.[^.]+$/, ''), file]));
  for (const name of Object.keys(project.tasks).sort()) {
    if (seen.has(name)) {
      if (builtinFile.has(name)) {
        throw invalid(
          seen.get(name)!,
          `has the name of taskgate's built-in task "${name}", which ${from} chooses: rename one of them`,
        );
      }
      continue;
    }
    const file = builtinFile.get(name);
    if (!file) {
      throw new ConfigError(
        `${from}: tasks.${name} is neither a built-in task nor a module in ${shownDir}/ ` +
          `(built-in tasks: ${[...builtinFile.keys()].join(', ')})`,
      );
    }
    const registered = await importTask(BUILTIN_TASKS_DIR, file, env, overridesOf(name));
    seen.set(name, file);
    tasks.push(registered);
  }
  return new Registry(tasks);
}

/** The tasks a configuration names: its project's (src/projectFile.ts), with its environment. */
export function loadConfiguredTasks(
  config: Pick<Config, 'project' | 'environment' | 'env'>,
): Promise<Registry> {
  return loadProjectTasks(config.project, config.environment, { production: config.env === 'production' });
}
