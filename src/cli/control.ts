import type { Argv } from 'yargs';
import { cancelRun, PAUSE_HISTORY_MAX, pause, pauseHistory, rerunRequest, resume } from '../core/controls.js';
import { findRun, findRunLog, type RunLogRecord, type RunRecord } from '../core/runs.js';
import type { Db } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import { withServices } from './context.js';
import { describeRun, printJson, printLine, reportRun, table } from './output.js';

/**
 * The operator's commands: cancel and rerun a run, pause and resume a task, and read a task's
 * pauses. They act on the database, as `run` does, so they reach runs of every replica. Who asked
 * is recorded as `cli`.
 */

const jsonOption = { type: 'boolean', default: false, describe: 'print JSON instead of text' } as const;
const reasonOption = {
  type: 'string',
  describe: 'why (kept with the control, at most 500 characters)',
} as const;

/** `--until`: an ISO 8601 date-time, or a time from now such as 30m, 2h, 1d. */
function parseUntil(value: string | undefined, now = Date.now()): string | undefined {
  if (value === undefined) return undefined;
  const relative = /^(\d+)(m|h|d)$/.exec(value.trim());
  if (!relative) return value;
  const unit = { m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 'm' | 'h' | 'd'];
  return new Date(now + Number(relative[1]) * unit).toISOString();
}

export function registerControlCommands(cli: Argv): Argv {
  return cli
    .command(
      'cancel <runId>',
      'stop a running run, wherever it runs: it stops at its next safe point and is recorded cancelled',
      (y) =>
        y
          .positional('runId', { type: 'string', demandOption: true, describe: 'the run (see `runs`)' })
          .option('reason', reasonOption)
          .option('task', { type: 'string', describe: 'refuse unless the run is a run of this task' })
          .option('wait', {
            type: 'number',
            default: 60,
            describe: 'seconds to wait for the run to stop (0: return once asked)',
          })
          .check(
            (argv) => (Number.isFinite(argv.wait) && argv.wait >= 0) || '--wait must be a number of seconds',
          )
          .option('json', jsonOption),
      async (argv) => {
        await withServices(async ({ db, registry, runner }) => {
          const marked = await cancelRun({ db, registry, runner }, argv.runId, {
            by: 'cli',
            reason: argv.reason,
            task: argv.task,
          });
          let run: RunRecord = marked;
          if (argv.wait > 0) {
            run = await runner.wait(marked.id, AbortSignal.timeout(argv.wait * 1000)).catch(() => marked);
          }
          if (argv.json) printJson(run);
          else if (run.status === 'running') {
            printLine(`cancel requested: ${run.task} run ${run.id} stops at its next safe point`);
          } else printLine(describeRun(run));
        });
      },
    )
    .command(
      'rerun <runId>',
      'run again here a run of any task, with its params and dry-run flag (exit codes as `run`)',
      (y) =>
        y
          .positional('runId', { type: 'string', demandOption: true, describe: 'the run to repeat' })
          .option('reason', reasonOption)
          .option('task', { type: 'string', describe: 'refuse unless the run is a run of this task' })
          .option('json', jsonOption),
      async (argv) => {
        await withServices(
          async ({ db, registry, runner }) => {
            const request = await rerunRequest({ db, registry, runner }, argv.runId, {
              by: 'cli',
              reason: argv.reason,
              task: argv.task,
            });
            const run = await runner.run(request);
            reportRun(run, argv.json, `rerun of ${run.rerunOf}`);
          },
          { monitor: true },
        );
      },
    )
    .command(
      'pause <task>',
      'stop new runs of a task (HTTP, CLI and the scheduler are refused) until resumed or --until',
      (y) =>
        y
          .positional('task', { type: 'string', demandOption: true, describe: 'task name' })
          .option('reason', { ...reasonOption, demandOption: true })
          .option('until', {
            type: 'string',
            describe: 'end the pause by itself then: ISO 8601, or 30m, 2h, 1d',
          })
          .option('json', jsonOption),
      async (argv) => {
        await withServices(async ({ db, registry }) => {
          const paused = await pause({ db, registry }, argv.task, {
            by: 'cli',
            reason: argv.reason,
            until: parseUntil(argv.until),
          });
          if (argv.json) printJson({ status: 'success', pause: paused });
          else
            printLine(
              `${paused.task} is paused ${paused.until ? `until ${paused.until}` : 'until resumed'}: ${paused.reason}`,
            );
        });
      },
    )
    .command(
      'resume <task>',
      'let runs of a paused task start again',
      (y) =>
        y
          .positional('task', { type: 'string', demandOption: true, describe: 'task name' })
          .option('reason', reasonOption)
          .option('json', jsonOption),
      async (argv) => {
        await withServices(async ({ db, registry }) => {
          const ended = await resume({ db, registry }, argv.task, { by: 'cli', reason: argv.reason });
          if (argv.json) printJson({ status: 'success', resumed: ended !== null, pause: ended });
          else printLine(ended ? `${argv.task} is resumed` : `${argv.task} was not paused`);
        });
      },
    )
    .command(
      'pauses <task>',
      "a task's pauses and resumes, newest first: who, why, when, and until when",
      (y) =>
        y
          .positional('task', { type: 'string', demandOption: true, describe: 'task name' })
          .option('limit', {
            type: 'number',
            default: 20,
            describe: `at most this many events (1 to ${PAUSE_HISTORY_MAX})`,
          })
          .option('json', jsonOption),
      async (argv) => {
        await withServices(async ({ db, registry }) => {
          const events = await pauseHistory({ db, registry }, argv.task, argv.limit);
          if (argv.json) {
            printJson(events);
            return;
          }
          if (events.length === 0) {
            printLine(`${argv.task} was never paused`);
            return;
          }
          printLine(
            table([
              ['AT', 'ACTION', 'BY', 'UNTIL', 'REASON'],
              ...events.map((e) => [
                e.at,
                e.action,
                e.by,
                e.action === 'paused' ? (e.until ?? 'resumed') : '-',
                e.reason?.replace(/\s+/g, ' ') ?? '-',
              ]),
            ]),
          );
        });
      },
    );
}

/** `taskgate runs <runId>`: one run whole, with what it logged. */
export async function showRun(db: Db, runId: string, json: boolean): Promise<void> {
  const run = await findRun(db, runId);
  if (!run) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${runId}`);
  const log = await findRunLog(db, runId);
  if (json) {
    printJson({ run, log });
    return;
  }
  const lines = [
    describeRun(run),
    `trigger: ${run.trigger}${run.rerunOf ? ` (rerun of ${run.rerunOf}${run.rerunReason ? `: ${run.rerunReason}` : ''})` : ''}`,
    `params: ${JSON.stringify(run.params)}`,
    `started: ${run.startedAt}${run.finishedAt ? `, finished: ${run.finishedAt}` : ''}`,
  ];
  if (run.cancel) {
    lines.push(
      `cancel requested by ${run.cancel.by} at ${run.cancel.requestedAt}${run.cancel.reason ? `: ${run.cancel.reason}` : ''}`,
    );
  }
  lines.push(...logText(log));
  printLine(lines.join('\n'));
}

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

function logText(log: RunLogRecord | null): string[] {
  if (!log) return ['log: none kept'];
  const out = [`log (${log.lines.length} lines${log.dropped ? `, ${log.dropped} more dropped` : ''}):`];
  for (const line of log.lines) {
    const { time, level, msg, task: _task, runId: _runId, requestId: _requestId, ...rest } = line;
    const at = typeof time === 'number' ? new Date(time).toISOString() : '';
    const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
    out.push(`  ${at} ${LEVELS[level as number] ?? level} ${msg ?? ''}${extra}`);
  }
  return out;
}
