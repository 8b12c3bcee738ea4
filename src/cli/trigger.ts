import type { Argv } from 'yargs';
import { TaskgateError } from '../errors.js';
import { triggerRemote } from '../remote/client.js';
import { DEFAULT_RETRY_DELAY_MS, DEFAULT_WAKE_TIMEOUT_MS } from '../remote/wakePolicy.js';
import { bootstrap } from './context.js';
import { printError, printJson, printLine } from './output.js';
import { parseParams, taskInputOptions } from './params.js';

const seconds = (value: number, name: string) => {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number of seconds`);
  return value * 1000;
};

/** `taskgate trigger <task> --url <base>`: runs a task on a remote taskgate, as a scheduler would. */
export function registerTriggerCommand(cli: Argv): Argv {
  return cli.command(
    'trigger <task>',
    'run a task on a remote taskgate, waking a sleeping host first (exit codes as `run`)',
    (y) =>
      taskInputOptions(y)
        .positional('task', { type: 'string', demandOption: true, describe: 'task name' })
        .option('url', { type: 'string', describe: "taskgate's base URL (default: TASKGATE_URL)" })
        .option('sign', {
          type: 'boolean',
          default: false,
          describe: 'sign each request (X-Cron-Signature) instead of sending CRON_SECRET_KEY',
        })
        .option('async', {
          type: 'boolean',
          default: false,
          describe: 'return once the run has started (202)',
        })
        .option('wait', {
          type: 'boolean',
          default: false,
          describe: 'with --async: follow the run to its end',
        })
        .option('idempotency-key', { type: 'string', describe: 'default: a new UUID, kept across retries' })
        .option('scheduled', {
          type: 'string',
          describe:
            "a scheduler's fire (as from a crontab): the run is the slot's, run once whoever fires it; the value names the scheduler (default: cron)",
        })
        .coerce('scheduled', (value: string | undefined) => (value === '' ? 'cron' : value))
        .option('wake-timeout', {
          type: 'number',
          default: DEFAULT_WAKE_TIMEOUT_MS / 1000,
          describe: 'seconds to keep retrying while the host wakes (503, refused, time-out)',
        })
        .option('retry-delay', {
          type: 'number',
          default: DEFAULT_RETRY_DELAY_MS / 1000,
          describe: 'seconds between retries',
        })
        .option('poll', { type: 'number', default: 2, describe: 'seconds between looks at a running run' })
        .option('json', { type: 'boolean', default: false, describe: "print taskgate's JSON answer" })
        .check((argv) => {
          for (const name of ['wake-timeout', 'retry-delay', 'poll'] as const) {
            const value = argv[name];
            if (!Number.isFinite(value) || value < 0) return `--${name} must be a number of seconds`;
          }
          return true;
        }),
    async (argv) => {
      const params = parseParams(argv.params, argv.param);
      const { config } = bootstrap();
      const baseUrl = argv.url ?? config.scheduling.remoteUrl;
      if (!baseUrl)
        throw new TaskgateError('BAD_REQUEST', 'say where taskgate is: --url <base> or TASKGATE_URL');
      const secret = config.secrets[0];
      if (!secret) {
        throw new TaskgateError(
          'UNAUTHORIZED',
          'CRON_SECRET_KEY is not set: trigger needs the secret the remote taskgate expects',
        );
      }
      const result = await triggerRemote({
        baseUrl,
        secret,
        task: argv.task,
        params,
        dryRun: argv.dryRun,
        sign: argv.sign,
        async: argv.async,
        wait: argv.wait,
        idempotencyKey: argv.idempotencyKey,
        scheduler: argv.scheduled,
        wakeTimeoutMs: seconds(argv.wakeTimeout, 'wake-timeout'),
        retryDelayMs: seconds(argv.retryDelay, 'retry-delay'),
        pollMs: seconds(argv.poll, 'poll'),
        log: (line) => process.stderr.write(`taskgate: ${line}\n`),
      });
      if (argv.json) printJson(result.body);
      if (result.error) {
        if (!argv.json) printError(result.error, false);
        process.exitCode = result.error.exitCode;
        return;
      }
      if (!argv.json) printLine(summary(argv.task, result.body as Record<string, unknown>));
    },
  );
}

function summary(task: string, body: Record<string, unknown>): string {
  if (body.status === 'accepted')
    return `${task} started — run ${body.runId}: GET ${body.location} tells how it ends`;
  const id = body.runId ?? body.id;
  const took = typeof body.durationMs === 'number' ? ` in ${body.durationMs} ms` : '';
  const dry = body.dryRun ? ' (dry run)' : '';
  const lines = [`${task} succeeded${took}${dry} — run ${id}`];
  if (body.result !== undefined && body.result !== null) lines.push(`result: ${JSON.stringify(body.result)}`);
  return lines.join('\n');
}
