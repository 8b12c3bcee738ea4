import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { TaskgateError } from './errors.js';

/**
 * A taskgate project: the folder of its `taskgate.config.json`, which chooses taskgate's built-in
 * tasks (with any overrides) and says where the project's own tasks and its scheduler workflow
 * are. `taskgate init` writes one; this repository has one choosing every built-in task.
 */
export const PROJECT_FILE = 'taskgate.config.json';

/** What a project may change of one task without touching its code. */
const taskOverrides = z
  .strictObject({
    schedule: z
      .string()
      .nullable()
      .optional()
      .describe("a 5-field cron expression replacing the task's own, or null to run it on demand only"),
    timeZone: z
      .string()
      .optional()
      .describe('the IANA time zone the schedule is read in (Europe/Berlin); default UTC'),
    catchUp: z
      .enum(['latest', 'none'])
      .optional()
      .describe('whether a slot missed while taskgate was down or asleep runs once when it starts or wakes'),
    catchUpWindowMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("how far back catch-up looks for a missed slot, in ms (default: the task's grace)"),
    params: z
      .record(z.string(), z.unknown())
      .optional()
      .describe("defaults for the task's parameters; a request's own params still win"),
    settings: z
      .record(z.string(), z.string())
      .optional()
      .describe("values of the task's settings; an environment variable of the same name wins"),
  })
  .describe('overrides of one task');

export type TaskOverrides = z.output<typeof taskOverrides>;

/** @public scripts/build.mjs writes taskgate.config.schema.json from it. */
export const projectSchema = z
  .strictObject({
    $schema: z.string().optional(),
    tasks: z
      .record(z.string().regex(/^[a-z0-9_]+$/, 'must be a task name'), taskOverrides)
      .default({})
      .describe(
        "taskgate's built-in tasks that run here, by name, each with optional overrides (the project's own tasks may be listed too, for overrides)",
      ),
    tasksDir: z
      .string()
      .nullable()
      .default('tasks')
      .describe(
        "the folder of the project's own task modules, relative to this file; null for none (taskgate's own repository, whose tasks/ are the built-in ones)",
      ),
    workflow: z
      .string()
      .default('.github/workflows/taskgate.yml')
      .describe(
        'where `taskgate workflow --write` writes the GitHub Actions workflow, relative to this file',
      ),
  })
  .describe('taskgate.config.json: which tasks a taskgate project runs');

export interface Project {
  /** The config file, absolute, or null when there is none (then: no built-in task, `./tasks`). */
  file: string | null;
  /** The folder of the config file (the working folder when there is none). */
  root: string;
  /** Tasks named in the config, with their overrides: the built-ins among them are the chosen ones. */
  tasks: Record<string, TaskOverrides>;
  /** The project's own task modules; null when it has none of its own. */
  tasksDir: string | null;
  /** The committed GitHub Actions workflow. */
  workflowFile: string;
}

function invalid(file: string, message: string): TaskgateError {
  return new TaskgateError('CONFIG_INVALID', `${file}: ${message}`, { file });
}

/**
 * The project whose config is at `configPath` (TASKGATE_CONFIG), or in `cwd`, or none. A config
 * that is named but missing, not JSON, or not of the schema stops every command with one line.
 */
export function loadProject(options: { configPath?: string | undefined; cwd?: string } = {}): Project {
  const cwd = options.cwd ?? process.cwd();
  const named = options.configPath ? path.resolve(cwd, options.configPath) : null;
  const file = named ?? path.join(cwd, PROJECT_FILE);
  if (!existsSync(file)) {
    if (named) throw invalid(named, 'not found (TASKGATE_CONFIG names it)');
    return {
      file: null,
      root: cwd,
      tasks: {},
      tasksDir: path.join(cwd, 'tasks'),
      workflowFile: path.join(cwd, '.github/workflows/taskgate.yml'),
    };
  }
  const shown = path.relative(cwd, file) || file;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw invalid(shown, `is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = projectSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    const keys = 'keys' in issue ? ` (${(issue.keys as string[]).join(', ')})` : '';
    throw invalid(shown, `${where}${issue.message}${keys}`);
  }
  const root = path.dirname(file);
  return {
    file,
    root,
    tasks: parsed.data.tasks,
    tasksDir: parsed.data.tasksDir === null ? null : path.resolve(root, parsed.data.tasksDir),
    workflowFile: path.resolve(root, parsed.data.workflow),
  };
}
