import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { Config } from '../../config.js';
import { taskCatalog } from '../../core/catalog.js';
import { cancelRun, pause, rerunRequest, resume } from '../../core/controls.js';
import { recentPauseEventsOf } from '../../core/pauses.js';
import type { Registry } from '../../core/registry.js';
import type { Runner } from '../../core/runner.js';
import { findRun, findRunLog, recentRunsOf } from '../../core/runs.js';
import { recentSlotsOf } from '../../core/slots.js';
import type { Db } from '../../db/sql.js';
import { TaskgateError } from '../../errors.js';
import { bodyError } from '../body.js';
import { asTaskgateError, errorBody, unanswered } from '../errors.js';
import type { FailedAuthLimiter } from '../limiter.js';
import type { SeenSignatures } from '../seenSignatures.js';
import { errorPage, loginPage, runPage, statusPage } from './page.js';
import { Redactor } from './redact.js';
import { StatusAuth, type Viewer } from './session.js';
import { CONTENT_SECURITY_POLICY } from './style.js';

/**
 * The status page under /status: GET /status (every task), GET /status/runs/:id (one run and its
 * log), the login form, and the controls as form posts (cancel, rerun, pause, resume), which call
 * the same functions as the /cron control routes. Mounted behind a path check, so /cron pays
 * nothing for it.
 */
export interface StatusDeps {
  db: Db;
  config: Config;
  registry: Registry;
  runner: Runner;
  /** The /cron limiter itself: one attacker gets one budget of tries, whichever door it knocks on. */
  limiter: FailedAuthLimiter;
  /** The store of signed requests seen, which also keeps the sessions ended by logging out. */
  seen: SeenSignatures;
}

/** How many runs of each task the page reads (the chart shows them; the table the first few). */
const RUNS_PER_TASK = 30;
/** How many of each scheduled task's latest slots the page shows. */
const SLOTS_PER_TASK = 8;
/** How many of each task's pauses and resumes the page shows. */
const PAUSE_EVENTS_PER_TASK = 5;

const prefersHtml = (ctx: Context) => ctx.accepts('json', 'html') === 'html';

function security(ctx: Context): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
  ctx.set('X-Content-Type-Options', 'nosniff');
  ctx.set('X-Frame-Options', 'DENY');
  // same-origin, not no-referrer: with no-referrer a browser's form posts say `Origin: null`.
  ctx.set('Referrer-Policy', 'same-origin');
}

/** The one error model, told as a page to a browser and as JSON to anything else. */
function answerError(ctx: Context, error: TaskgateError): void {
  ctx.status = error.status;
  const message = error.expose ? error.message : 'internal error';
  if (!prefersHtml(ctx)) {
    ctx.body = errorBody(error);
    return;
  }
  ctx.type = 'html';
  if (error.code === 'UNAUTHORIZED') ctx.body = loginPage(ctx.state.loginMessage ?? message);
  else if (error.code === 'TOO_MANY_REQUESTS') ctx.body = loginPage(message);
  else ctx.body = errorPage(error, message);
}

const formParser = bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' });

/** The form's fields (application/x-www-form-urlencoded); anything else reads as no fields. */
async function form(ctx: Context): Promise<Record<string, unknown>> {
  try {
    await formParser(ctx, async () => undefined);
  } catch (error) {
    throw bodyError(error as Parameters<typeof bodyError>[0]);
  }
  const body = ctx.request.body;
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

export function statusRoutes(deps: StatusDeps): Middleware {
  const auth: StatusAuth = new StatusAuth({
    secrets: deps.config.secrets,
    statusToken: deps.config.http.statusToken,
    limiter: deps.limiter,
    ended: deps.seen,
    secureCookie: deps.config.env === 'production',
  });
  const { http } = deps.config;
  const redact = new Redactor(
    [
      ...deps.config.secrets,
      http.statusToken,
      http.metricsToken,
      http.qstash?.currentSigningKey,
      http.qstash?.nextSigningKey,
    ].filter((credential): credential is string => credential !== undefined),
  );
  const router = new Router({ sensitive: true });

  /** The viewer, or the login form (200 to a browser, 401 to anything else) when none was presented. */
  async function viewerOr401(ctx: Context): Promise<Viewer | null> {
    const viewer = await auth.viewer(ctx);
    if (!('none' in viewer)) return viewer;
    if (!prefersHtml(ctx)) auth.refuse(ctx, viewer.none);
    ctx.type = 'html';
    ctx.body = loginPage(viewer.none === 'session expired' ? 'Your session has ended: sign in again.' : null);
    return null;
  }

  router.get('/status', async (ctx) => {
    const viewer = await viewerOr401(ctx);
    if (!viewer) return;
    const now = new Date();
    const tasks = await taskCatalog(deps.registry, deps.db, now);
    const names = tasks.map((task) => task.name);
    const [runs, pauses, slots] = await Promise.all([
      recentRunsOf(deps.db, names, RUNS_PER_TASK),
      recentPauseEventsOf(deps.db, names, PAUSE_EVENTS_PER_TASK),
      recentSlotsOf(deps.db, deps.registry.list(), now, SLOTS_PER_TASK),
    ]);
    const page = statusPage(
      tasks.map((info) => ({
        info,
        runs: runs.get(info.name) ?? [],
        pauses: pauses.get(info.name) ?? [],
        slots: slots.get(info.name) ?? [],
      })),
      viewer,
      now,
      redact,
    );
    ctx.type = 'html';
    ctx.body = page.html;
  });

  router.get('/status/login', (ctx) => {
    ctx.type = 'html';
    ctx.body = loginPage(null);
  });

  router.post('/status/login', async (ctx) => {
    auth.sameOrigin(ctx);
    const token = text((await form(ctx)).token)?.trim() ?? '';
    const role = token === '' ? null : auth.roleOf(token);
    if (!role) {
      ctx.state.loginMessage = 'That token is not right.';
      auth.refuse(ctx, token === '' ? 'no token at the login form' : 'wrong token at the login form');
    }
    auth.start(ctx, role);
    ctx.status = 303;
    ctx.redirect('/status');
  });

  router.post('/status/logout', async (ctx) => {
    auth.sameOrigin(ctx);
    await auth.end(ctx);
    ctx.status = 303;
    ctx.redirect('/status');
  });

  router.get('/status/runs/:id', async (ctx) => {
    const viewer = await viewerOr401(ctx);
    if (!viewer) return;
    const id = ctx.params.id!;
    const run = await findRun(deps.db, id);
    if (!run) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${id}`);
    const log = await findRunLog(deps.db, id);
    ctx.type = 'html';
    ctx.body = runPage(run, log, viewer, new Date(), redact);
  });

  /** A control: same origin, the write credential, the session's CSRF token; then 303 back. */
  function control(act: (ctx: Context, fields: Record<string, unknown>) => Promise<string>): Middleware {
    return async (ctx) => {
      auth.sameOrigin(ctx);
      const viewer = await auth.require(ctx);
      auth.requireWrite(ctx, viewer);
      const fields = await form(ctx);
      auth.checkCsrf(ctx, viewer, fields.csrf);
      const location = await act(ctx, fields);
      ctx.status = 303;
      ctx.redirect(location);
    };
  }

  router.post(
    '/status/runs/:id/cancel',
    control(async (ctx, fields) => {
      const run = await cancelRun(deps, ctx.params.id!, { by: 'http', reason: text(fields.reason) });
      ctx.log.warn({ runId: run.id, task: run.task, reason: run.cancel?.reason }, 'run cancel requested');
      return `/status/runs/${run.id}`;
    }),
  );

  router.post(
    '/status/runs/:id/rerun',
    control(async (ctx, fields) => {
      const request = await rerunRequest(deps, ctx.params.id!, {
        by: 'http',
        reason: text(fields.reason),
        requestId: ctx.requestId,
      });
      const { run } = await deps.runner.start(request);
      ctx.state.runId = run.id;
      return `/status/runs/${run.id}`;
    }),
  );

  router.post(
    '/status/tasks/:task/pause',
    control(async (ctx, fields) => {
      const hours = text(fields.for) ?? '';
      if (!/^\d{0,4}$/.test(hours)) throw new TaskgateError('BAD_REQUEST', 'for must be a number of hours');
      const until = hours === '' || hours === '0' ? null : new Date(Date.now() + Number(hours) * 3_600_000);
      const paused = await pause(deps, ctx.params.task!, {
        by: 'http',
        reason: text(fields.reason),
        until: until?.toISOString(),
      });
      ctx.log.warn({ task: paused.task, reason: paused.reason, until: paused.until }, 'task paused');
      return `/status#task-${paused.task}`;
    }),
  );

  router.post(
    '/status/tasks/:task/resume',
    control(async (ctx, fields) => {
      const task = ctx.params.task!;
      const ended = await resume(deps, task, { by: 'http', reason: text(fields.reason) });
      if (ended) ctx.log.warn({ task }, 'task resumed');
      return `/status#task-${task}`;
    }),
  );

  const routes = router.routes() as unknown as Middleware;
  const allowed = router.allowedMethods() as unknown as Middleware;
  const end = async () => undefined;
  return async (ctx) => {
    security(ctx);
    try {
      await routes(ctx, () => allowed(ctx, end));
    } catch (thrown) {
      answerError(ctx, asTaskgateError(ctx, thrown));
      return;
    }
    const missing = unanswered(ctx);
    if (missing) answerError(ctx, missing);
  };
}

/** Whether a path is the status page's: the one check every other request pays. */
export const isStatusPath = (path: string) => path === '/status' || path.startsWith('/status/');
