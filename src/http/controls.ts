import type Router from '@koa/router';
import type { Context } from 'koa';
import { z } from 'zod';
import { cancelRun, pause, rerunRequest, resume } from '../core/controls.js';
import type { Registry } from '../core/registry.js';
import type { Runner } from '../core/runner.js';
import type { Db } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import type { Guard } from './auth.js';
import { jsonBody } from './body.js';
import { type RunRouteDeps, runLocation, startAndAnswer } from './runs.js';

/**
 * The operator's routes, behind the same guard as the rest of /cron: cancel and rerun a run,
 * pause and resume a task. Bodies are small JSON objects; unknown fields are refused.
 */
const runControl = z.strictObject({ reason: z.unknown().optional(), task: z.string().optional() });
const pauseBody = z.strictObject({ reason: z.unknown().optional(), until: z.unknown().optional() });
const resumeBody = z.strictObject({ reason: z.unknown().optional() });

function body<T>(ctx: Context, schema: z.ZodType<T>): T {
  const raw = ctx.request.body;
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    field: issue.path.join('.') || ('keys' in issue ? issue.keys.join(',') : null),
    message: issue.message,
  }));
  throw new TaskgateError('BAD_REQUEST', 'invalid request body', { errors });
}

export interface ControlRouteDeps extends RunRouteDeps {
  db: Db;
  registry: Registry;
  runner: Runner;
}

export function addControlRoutes(router: Router, deps: ControlRouteDeps, { afterBody }: Guard): void {
  const postGuard = [jsonBody(), afterBody];

  router.post('/cron/runs/:id/cancel', ...postGuard, async (ctx) => {
    const { reason, task } = body(ctx, runControl);
    const run = await cancelRun(deps, ctx.params.id!, { by: 'http', reason: reason as string, task });
    ctx.log.warn({ runId: run.id, task: run.task, reason: run.cancel?.reason }, 'run cancel requested');
    ctx.status = 202;
    ctx.set('Location', runLocation(run.id));
    ctx.body = {
      status: 'accepted',
      task: run.task,
      runId: run.id,
      message: `cancel requested: ${run.task} stops at its next safe point; GET ${runLocation(run.id)} tells how it ends`,
      cancel: run.cancel,
      location: runLocation(run.id),
    };
  });

  router.post('/cron/runs/:id/rerun', ...postGuard, async (ctx) => {
    const { reason, task } = body(ctx, runControl);
    const request = await rerunRequest(deps, ctx.params.id!, {
      by: 'http',
      reason: reason as string,
      task,
      requestId: ctx.requestId,
    });
    await startAndAnswer(ctx, deps, request);
  });

  router.post('/cron/:task/pause', ...postGuard, async (ctx) => {
    const { reason, until } = body(ctx, pauseBody);
    const paused = await pause(deps, ctx.params.task!, { by: 'http', reason: reason as string, until });
    ctx.log.warn({ task: paused.task, reason: paused.reason, until: paused.until }, 'task paused');
    ctx.body = { status: 'success', message: `${paused.task} is paused`, pause: paused };
  });

  router.post('/cron/:task/resume', ...postGuard, async (ctx) => {
    const { reason } = body(ctx, resumeBody);
    const task = ctx.params.task!;
    const ended = await resume(deps, task, { by: 'http', reason: reason as string });
    if (ended) ctx.log.warn({ task }, 'task resumed');
    ctx.body = {
      status: 'success',
      message: ended ? `${task} is resumed` : `${task} was not paused`,
      resumed: ended !== null,
      pause: ended,
    };
  });
}
