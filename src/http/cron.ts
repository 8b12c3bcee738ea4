import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { z } from 'zod';
import type { Config } from '../config.js';
import { taskCatalog } from '../core/catalog.js';
import { pauseHistory } from '../core/controls.js';
import { type Registry, TASK_NAME } from '../core/registry.js';
import type { Runner } from '../core/runner.js';
import { findRun, findRunLog, listRuns, RUN_STATUSES } from '../core/runs.js';
import { MAX_SLOTS, recentSlotsOf } from '../core/slots.js';
import type { Db } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import { wholeNumberText } from '../formats.js';
import type { Guard } from './auth.js';
import { jsonBody } from './body.js';
import { addControlRoutes } from './controls.js';
import { startFromGet, startTask } from './runs.js';

/** The router answers HEAD with GET's route; a HEAD must never start a run. */
const refuseHead: Middleware = async (ctx, next) => {
  if (ctx.method !== 'HEAD') return next();
  ctx.status = 405;
  ctx.set('Allow', 'GET, POST');
};

export interface CronDeps {
  db: Db;
  config: Config;
  registry: Registry;
  runner: Runner;
}

// The limits' ranges are checked by listRuns and pauseHistory, the same for the CLI.
const runsQuery = z.strictObject({
  task: z.string().regex(TASK_NAME, 'must be a task name').optional(),
  status: z.enum(RUN_STATUSES).optional(),
  limit: wholeNumberText().default(50),
});

const slotsQuery = z.strictObject({
  task: z.string().regex(TASK_NAME, 'must be a task name').optional(),
  limit: z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(1).max(MAX_SLOTS))
    .default(10),
});

const pausesQuery = z.strictObject({
  limit: wholeNumberText().default(50),
});

/** The query's problems, one per field, as the 400 lists them. */
function queryErrors(error: z.ZodError): { field: string | null; message: string }[] {
  return error.issues.map((issue) => ({
    field: issue.path.join('.') || ('keys' in issue ? issue.keys.join(',') : null),
    message: issue.message,
  }));
}

/** An alias's path with and without its trailing slash: both are served. */
function aliasVariants(path: string): string[] {
  return [...new Set([path, path.replace(/\/+$/, '') || '/'])];
}

/** The paths of every task's aliases. */
function aliasPaths(registry: Registry): string[] {
  return registry
    .list()
    .flatMap(({ definition }) => (definition.aliases ?? []).flatMap((alias) => aliasVariants(alias.path)));
}

/** Whether a path is behind the secret: /cron and everything under it, and the tasks' aliases. */
export function guardedPaths(registry: Registry): (path: string) => boolean {
  const aliases = new Set(aliasPaths(registry));
  return (path) => path === '/cron' || path.startsWith('/cron/') || aliases.has(path);
}

/**
 * The routes behind the secret (every path under /cron, and the tasks' aliases: the gate in
 * front of the router refuses a request without credentials before any of these runs). On POST
 * routes the body is read after the headers are checked and before a signature is, because a
 * signature covers it.
 */
export function addCronRoutes(router: Router, deps: CronDeps, { afterBody, bearerOnly }: Guard): void {
  const guard = [afterBody];
  const postGuard = [jsonBody(), afterBody];

  router.get('/cron', ...guard, async (ctx) => {
    const tasks = await taskCatalog(deps.registry, deps.db, new Date());
    ctx.body = { status: 'success', tasks };
  });

  router.get('/cron/runs', ...guard, async (ctx) => {
    const parsed = runsQuery.safeParse(ctx.query);
    if (!parsed.success) {
      throw new TaskgateError('BAD_REQUEST', 'invalid query: task, status and limit are understood', {
        errors: queryErrors(parsed.error),
      });
    }
    const runs = await listRuns(deps.db, parsed.data);
    ctx.body = { status: 'success', runs };
  });

  // What became of each task's latest slots: ran (fired by whom, duplicates), failed, missed.
  router.get('/cron/slots', ...guard, async (ctx) => {
    const parsed = slotsQuery.safeParse(ctx.query);
    if (!parsed.success) {
      throw new TaskgateError('BAD_REQUEST', 'invalid query: task and limit are understood', {
        errors: queryErrors(parsed.error),
      });
    }
    const { task, limit } = parsed.data;
    const tasks = task ? [deps.registry.require(task)] : deps.registry.list();
    const slots = await recentSlotsOf(deps.db, tasks, new Date(), limit);
    ctx.body = { status: 'success', slots: [...slots.values()].flat() };
  });

  // Before /cron/runs/:id, which would take /cron/runs/pauses for a run id (no run id is "pauses").
  router.get('/cron/:task/pauses', ...guard, async (ctx) => {
    const parsed = pausesQuery.safeParse(ctx.query);
    if (!parsed.success) {
      throw new TaskgateError('BAD_REQUEST', 'invalid query: only limit is understood', {
        errors: queryErrors(parsed.error),
      });
    }
    const task = ctx.params.task!;
    const events = await pauseHistory(deps, task, parsed.data.limit);
    ctx.body = { status: 'success', task, events };
  });

  router.get('/cron/runs/:id', ...guard, async (ctx) => {
    const id = ctx.params.id!;
    const { logs } = ctx.query;
    if (logs !== undefined && logs !== '0' && logs !== '1') {
      throw new TaskgateError('BAD_REQUEST', 'logs must be 1 (include what the run logged) or 0');
    }
    const run = await findRun(deps.db, id);
    if (!run) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${ctx.params.id}`);
    ctx.body =
      logs === '1'
        ? { status: 'success', run, log: await findRunLog(deps.db, id) }
        : { status: 'success', run };
  });

  addControlRoutes(router, deps, { afterBody, bearerOnly });

  router.post('/cron/:task', ...postGuard, async (ctx) => {
    await startTask(ctx, deps, ctx.params.task!);
  });

  // Vercel Cron can only send GET, with the secret as a bearer token: opt-in, since a GET that
  // acts is what links, prefetchers and crawlers expect never to happen.
  if (deps.config.http.allowGetTriggers) {
    router.get('/cron/:task', refuseHead, bearerOnly, afterBody, async (ctx) => {
      await startFromGet(ctx, deps, ctx.params.task!);
    });
  }

  // Routes a task declares for callers of an older system; a trailing slash is optional. The old
  // system's success body says the work was done: a dry run, which did nothing, gets taskgate's
  // own answer instead (`dryRun: true`, what it would have done).
  for (const { definition } of deps.registry.list()) {
    for (const alias of definition.aliases ?? []) {
      router.post(aliasVariants(alias.path), ...postGuard, async (ctx) => {
        await startTask(ctx, deps, definition.name);
        const dryRun = (ctx.body as { dryRun?: unknown } | undefined)?.dryRun === true;
        if (ctx.status === 200 && alias.successBody !== undefined && !dryRun) {
          ctx.type = 'application/json';
          ctx.body = alias.successBody;
        }
      });
    }
  }
}
