import type { Argv } from 'yargs';
import { type TaskInfo, taskCatalog } from '../core/catalog.js';
import { TaskgateError } from '../errors.js';
import { remoteCatalog } from '../remote/client.js';
import { bootstrap, withServices } from './context.js';
import { EXIT } from './exit.js';
import { printJson, printLine, table } from './output.js';

type Status = Omit<TaskInfo, 'params'>;

const time = (iso: string | null | undefined) => (iso ? iso.replace(/:\d\d\.\d{3}Z$/, 'Z') : '-');

function state(task: Status): string {
  if (task.paused) return task.pause?.until ? `PAUSED until ${time(task.pause.until)}` : 'PAUSED';
  if (task.overdue) return 'OVERDUE';
  if (!task.lastRun) return task.schedule ? 'never run' : 'on demand';
  if (task.lastRun.status === 'running') return 'running';
  if (task.lastRun.status !== 'succeeded') return task.lastRun.status;
  return 'ok';
}

/** `taskgate status`: each task's last run, last success, due time and whether it is overdue. */
export function registerStatusCommand(cli: Argv): Argv {
  return cli.command(
    'status',
    'show whether each task ran when it should have (exit 1 when a task is overdue)',
    (y) =>
      y
        .option('url', {
          type: 'string',
          describe: 'ask a remote taskgate (GET /cron) instead of the database',
        })
        .option('sign', { type: 'boolean', default: false, describe: 'with --url: sign the request' })
        .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of text' }),
    async (argv) => {
      const now = new Date();
      let tasks: Status[];
      if (argv.url) {
        const { config } = bootstrap();
        const secret = config.secrets[0];
        if (!secret) {
          throw new TaskgateError('UNAUTHORIZED', 'CRON_SECRET_KEY is not set: GET /cron needs the secret');
        }
        const log = (line: string) => process.stderr.write(`taskgate: ${line}\n`);
        tasks = (await remoteCatalog({
          baseUrl: argv.url,
          secret,
          sign: argv.sign,
          log,
        })) as unknown as Status[];
      } else {
        tasks = await withServices(async ({ registry, db }) => taskCatalog(registry, db, now));
      }
      tasks = tasks.map(({ params: _params, ...task }: Status & { params?: unknown }) => task);
      if (argv.json) printJson(tasks);
      else {
        printLine(
          table([
            ['TASK', 'SCHEDULE', 'LAST RUN', 'LAST SUCCESS', 'DUE', 'STATE'],
            ...tasks.map((t) => [
              t.name,
              t.schedule ?? '-',
              t.lastRun ? `${t.lastRun.status} ${time(t.lastRun.startedAt)}` : '-',
              time(t.lastSuccess?.startedAt),
              time(t.dueAt),
              state(t),
            ]),
          ]),
        );
      }
      const overdue = tasks.filter((t) => t.overdue).map((t) => t.name);
      if (overdue.length > 0) {
        process.stderr.write(`taskgate: overdue: ${overdue.join(', ')}\n`);
        process.exitCode = EXIT.failed;
      }
    },
  );
}
