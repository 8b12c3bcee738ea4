import type { Argv } from 'yargs';
import { type TaskInfo, taskCatalog } from '../core/catalog.js';
import { BUILTIN_TASKS_DIR, loadConfiguredTasks, loadRegistry } from '../core/registry.js';
import { listRuns, RUN_STATUSES, RUNS_LIMIT_MAX } from '../core/runs.js';
import { MAX_SLOTS, recentSlotsOf } from '../core/slots.js';
import { bootstrap, withServices } from './context.js';
import { showRun } from './control.js';
import { printJson, printLine, reportRun, table } from './output.js';
import { parseParams, taskInputOptions } from './params.js';

const jsonOption = { type: 'boolean', default: false, describe: 'print JSON instead of text' } as const;

const pausedUntil = (until: string | null) => (until ? `PAUSED until ${until}` : 'PAUSED');

/**
 * What `list` shows: the registry, and the pauses when DATABASE_URL names a database. Without one
 * (development on the embedded database, which `list` does not start) or when it cannot be read,
 * the tasks are listed without their pauses and stderr says so: `list` never fails for want of a
 * database.
 */
async function listTasks(): Promise<{ tasks: TaskInfo[]; pausesRead: boolean }> {
  const { config } = bootstrap();
  const registry = await loadConfiguredTasks(config);
  const now = new Date();
  if (config.databaseUrl) {
    // One try, no start-up retry: a listing is not worth waiting a minute for a database.
    const [{ Db }, { pendingMigrations }] = await Promise.all([
      import('../db/sql.js'),
      import('../db/migrations/pending.js'),
    ]);
    const { database } = config;
    const db = new Db({
      url: config.databaseUrl,
      max: 1,
      queryTimeoutMs: database.queryTimeoutMs,
      connectTimeoutMs: Math.min(database.connectTimeoutMs, 3_000),
    });
    const pausesNotShown = (why: string) =>
      process.stderr.write(`taskgate: pauses not shown, the database could not be read: ${why}\n`);
    try {
      if ((await pendingMigrations(db)).length === 0) {
        return { tasks: await taskCatalog(registry, db, now), pausesRead: true };
      }
      pausesNotShown("taskgate's schema there is not migrated (taskgate migrate)");
    } catch (error) {
      pausesNotShown(error instanceof Error ? error.message : String(error));
    } finally {
      await db.close();
    }
  }
  return { tasks: await taskCatalog(registry, null, now), pausesRead: false };
}

/** Every built-in task, chosen by the project or not: what `taskgate.config.json` may name. */
async function listBuiltins(json: boolean): Promise<void> {
  const { config } = bootstrap();
  const builtins = await loadRegistry(BUILTIN_TASKS_DIR, config.environment);
  const chosen = new Set(Object.keys(config.project.tasks));
  const rows = builtins.list().map((task) => ({
    name: task.definition.name,
    chosen: chosen.has(task.definition.name),
    schedule: task.schedule?.expression ?? null,
    description: task.definition.description,
  }));
  if (json) return printJson(rows);
  printLine(
    table([
      ['TASK', 'CHOSEN', 'SCHEDULE', 'DESCRIPTION'],
      ...rows.map((r) => [r.name, r.chosen ? 'yes' : '-', r.schedule ?? '-', r.description]),
    ]),
  );
}

/** `list`, `run`, `runs` and `migrate`: the commands that work on this machine's database. */
export function registerTaskCommands(cli: Argv): Argv {
  return cli
    .command(
      'list',
      'list the registered tasks, their schedules and next run times (and pauses, with DATABASE_URL)',
      (y) =>
        y.option('json', jsonOption).option('builtin', {
          type: 'boolean',
          default: false,
          describe: "list taskgate's built-in tasks instead, saying which the project's config chooses",
        }),
      async (argv) => {
        if (argv.builtin) return listBuiltins(argv.json);
        const { tasks, pausesRead } = await listTasks();
        if (argv.json) {
          // Run-dependent fields belong to `status` and GET /cron; pauses only when they were read.
          printJson(
            tasks.map(({ lastRun, lastSuccess, dueAt, graceMs, overdue, paused, pause, ...task }) =>
              pausesRead ? { ...task, paused, pause } : task,
            ),
          );
          return;
        }
        // The next run in the schedule's zone, and in UTC when that is another.
        const nextRun = (t: TaskInfo) =>
          t.nextRunLocal && t.timeZone !== 'UTC'
            ? `${t.nextRunLocal} (${t.nextRunAt})`
            : (t.nextRunAt ?? '-');
        printLine(
          table([
            ['TASK', 'SCHEDULE', 'WHEN', 'NEXT RUN', 'DESCRIPTION'],
            ...tasks.map((t) => [
              t.name,
              t.schedule ?? '-',
              t.scheduleText,
              t.paused ? pausedUntil(t.pause?.until ?? null) : nextRun(t),
              t.description,
            ]),
          ]),
        );
      },
    )
    .command(
      'run <task>',
      'run a task here and now, as the scheduler would (exit 0 ok, 1 failed, 2 bad input, 75 busy)',
      (y) =>
        taskInputOptions(y)
          .positional('task', { type: 'string', demandOption: true, describe: 'task name (see `list`)' })
          .option('scheduled', {
            type: 'string',
            describe:
              "a scheduler's fire (a crontab line): the run is the slot's, run once whoever fires it; the value names the scheduler (default: cron)",
          })
          .coerce('scheduled', (value: string | undefined) => (value === '' ? 'cron' : value))
          .check((argv) => !(argv.scheduled && argv.dryRun) || 'a scheduled fire is never a dry run')
          .option('json', jsonOption),
      async (argv) => {
        const params = parseParams(argv.params, argv.param);
        await withServices(
          async ({ runner }) => {
            const run = await runner.run({
              task: argv.task,
              params,
              dryRun: argv.dryRun,
              trigger: argv.scheduled ?? 'cli',
              ...(argv.scheduled ? { scheduled: {} } : {}),
            });
            reportRun(run, argv.json);
          },
          // A run is recorded in taskgate's schema: a first run on a database makes it, as serve does.
          { monitor: true, migrate: true },
        );
      },
    )
    .command(
      'runs [runId]',
      'show the run history, newest first; with a run id, that run whole with its log',
      (y) =>
        y
          .positional('runId', { type: 'string', describe: 'one run, shown whole' })
          .option('task', { type: 'string', describe: 'only this task' })
          .option('status', { choices: RUN_STATUSES, describe: 'only runs with this status' })
          .option('limit', {
            type: 'number',
            default: 20,
            describe: `at most this many runs (1 to ${RUNS_LIMIT_MAX})`,
          })
          .option('json', jsonOption),
      async (argv) => {
        await withServices(async ({ registry, db }) => {
          // Read-only: runs left `running` by a dead process are marked abandoned by `serve`.
          if (argv.runId) return showRun(db, argv.runId, argv.json);
          if (argv.task) registry.require(argv.task);
          const runs = await listRuns(db, {
            task: argv.task,
            status: argv.status,
            limit: argv.limit,
          });
          if (argv.json) {
            printJson(runs);
            return;
          }
          if (runs.length === 0) {
            printLine('no runs yet');
            return;
          }
          printLine(
            table([
              ['STARTED', 'TASK', 'STATUS', 'MS', 'TRIGGER', 'SLOT', 'RUN'],
              ...runs.map((r) => [
                r.startedAt,
                r.task,
                r.dryRun ? `${r.status} (dry)` : r.status,
                String(r.durationMs ?? '-'),
                r.trigger,
                r.slot ? `${r.slot}${r.duplicateFires > 0 ? ` (+${r.duplicateFires} dup)` : ''}` : '-',
                r.id,
              ]),
            ]),
          );
        });
      },
    )
    .command(
      'slots [task]',
      "what became of each scheduled task's latest slots: ran (fired by whom, duplicates refused), caught up, failed, missed",
      (y) =>
        y
          .positional('task', { type: 'string', describe: 'only this task' })
          .option('limit', { type: 'number', default: 10, describe: `slots per task (1 to ${MAX_SLOTS})` })
          .check((argv) => {
            const ok = Number.isInteger(argv.limit) && argv.limit >= 1 && argv.limit <= MAX_SLOTS;
            return ok || `--limit must be a whole number from 1 to ${MAX_SLOTS}`;
          })
          .option('json', jsonOption),
      async (argv) => {
        await withServices(async ({ registry, db }) => {
          const tasks = argv.task ? [registry.require(argv.task)] : registry.list();
          const slots = [...(await recentSlotsOf(db, tasks, new Date(), argv.limit)).values()].flat();
          if (argv.json) return printJson(slots);
          if (slots.length === 0) return printLine('no scheduled task');
          printLine(
            table([
              ['SLOT', 'TASK', 'FATE', 'FIRED BY', 'DUPLICATES', 'ATTEMPTS', 'RUN'],
              ...slots.map((s) => [
                s.slot,
                s.task,
                s.caughtUp && s.fate === 'ran' ? 'ran (caught up)' : s.fate,
                s.firedBy ?? '-',
                String(s.duplicates),
                String(s.attempts),
                s.runId ?? '-',
              ]),
            ]),
          );
        });
      },
    )
    .command(
      'migrate',
      "apply taskgate's pending database migrations",
      (y) => y.option('json', jsonOption),
      async (argv) => {
        const { config, logger } = bootstrap();
        const { openDatabase } = await import('../service.js');
        const registry = await loadConfiguredTasks(config);
        const database = await openDatabase(config, logger, { migrate: true, registry });
        try {
          const executed = await (await database.orm.ready()).getMigrator().getExecutedMigrations();
          const names = executed.map((m) => m.name);
          const { applied } = database;
          if (argv.json) printJson({ status: 'success', applied, migrations: names });
          else if (applied.length > 0) {
            printLine(
              `applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}; the database is up to date (${names.length} in all)`,
            );
          } else
            printLine(
              `nothing to apply: the database is up to date (${names.length} migrations, the last ${names.at(-1)})`,
            );
        } finally {
          await database.close();
        }
      },
    );
}
