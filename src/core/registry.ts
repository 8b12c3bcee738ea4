import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ConfigError } from '../config.js';
import { TaskgateError } from '../errors.js';
import type { AnyTask } from '../task.js';
import { Schedule } from './schedule.js';

/** `tasks/` beside `src/`, both in a clone (tsx) and in `dist/` (compiled). */
export const DEFAULT_TASKS_DIR = fileURLToPath(new URL('../../tasks/', import.meta.url));

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
  return new TaskgateError('INVALID_TASK', `tasks/${file}: ${problem}`, { file });
}

/** Checks one module's export against the task contract; throws naming the file. */
export function validateTask(
  file: string,
  exported: unknown,
  env: Readonly<Record<string, string | undefined>> = {},
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
  let schedule: Schedule | null = null;
  if (task.schedule !== null && task.schedule !== undefined) {
    try {
      schedule = new Schedule(task.schedule);
    } catch (error) {
      throw invalid(file, `schedule ${(error as Error).message}`);
    }
  }
  return {
    definition: task as AnyTask,
    params: task.params.strict(),
    schedule,
    settings: readSettings(task as AnyTask, env),
    file,
  };
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

/** Imports every task module of a folder. A malformed or duplicate task stops start-up. */
export async function loadRegistry(
  dir: string = DEFAULT_TASKS_DIR,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<Registry> {
  const files = (await readdir(dir)).filter(isTaskModule).sort();
  const tasks: RegisteredTask[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    let module: Record<string, unknown>;
    try {
      module = await import(pathToFileURL(path.join(dir, file)).href);
    } catch (error) {
      throw invalid(file, `cannot be loaded: ${(error as Error).message}`);
    }
    const registered = validateTask(file, module.default, env);
    const other = seen.get(registered.definition.name);
    if (other) throw invalid(file, `duplicates task "${registered.definition.name}" of tasks/${other}`);
    seen.set(registered.definition.name, file);
    tasks.push(registered);
  }
  return new Registry(tasks);
}
