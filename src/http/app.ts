import Router from '@koa/router';
import Koa, { type Context } from 'koa';
import type { Config } from '../config.js';
import type { Registry } from '../core/registry.js';
import type { Runner } from '../core/runner.js';
import { checkDatabase } from '../db/health.js';
import { type Db, RETRY_AFTER_SECONDS } from '../db/sql.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../monitoring/metrics.js';
import { VERSION } from '../version.js';
import { authenticate, bearerToken, credentialHeaders, refuse } from './auth.js';
import { addCronRoutes, guardedPaths } from './cron.js';
import { errorHandler } from './errors.js';
import { FailedAuthLimiter } from './limiter.js';
import { QstashVerifier } from './qstash.js';
import { Refusals } from './refusals.js';
import { requestLog } from './requestLog.js';
import { SecretSet } from './secrets.js';
import { SeenSignatures } from './seenSignatures.js';
import { keepConnection } from './serverLimits.js';
import { isStatusPath, statusRoutes } from './status/routes.js';

declare module 'koa' {
  interface DefaultContext {
    log: Logger;
    requestId: string;
  }
}

export interface AppDeps {
  db: Db;
  logger: Logger;
  /**
   * The task routes need all three; without them the app serves only /healthz and /readyz
   * (and /metrics when given metrics).
   */
  config?: Config;
  registry?: Registry;
  runner?: Runner;
  metrics?: Metrics;
  /** Where the refusals are logged; `serve` passes its own, to log what is left at shutdown. */
  refusals?: Refusals;
  /** Told of every request before anything else (the internal clock notices a wake by it). */
  onRequest?: () => void;
}

/** The address of the caller: the socket's, or with TRUST_PROXY=n the one n proxies vouch for. */
function trustProxy(app: Koa, hops: number): void {
  if (hops === 0) return;
  app.proxy = true;
  // Koa takes the last `maxIpsCount` entries of X-Forwarded-For: the ones our own proxies
  // appended. Entries to their left are whatever the caller wrote and are never used.
  app.maxIpsCount = hops;
}

/**
 * GET /metrics, asking for METRICS_TOKEN as a bearer token when one is set. Wrong tokens are
 * counted by a limiter of their own, so that they never block /cron.
 */
function metricsRoute(metrics: Metrics, token: string | undefined, limiter: FailedAuthLimiter) {
  const tokens = token ? new SecretSet([token]) : null;
  return async (ctx: Context) => {
    if (tokens) {
      const headers = credentialHeaders(ctx);
      const bearer = headers?.authorization === undefined ? null : bearerToken(headers.authorization);
      if (!bearer || !tokens.matches(bearer)) {
        refuse(ctx, limiter, limiter.start(ctx.ip), 'wrong metrics token', 'taskgate metrics');
      }
    }
    ctx.type = metrics.contentType;
    ctx.body = await metrics.text();
  };
}

/**
 * Headers of every answer: never stored by a cache (each one is about now, and may name tasks and
 * runs), never sniffed as another type than it says; in production, browsers told to come back
 * over HTTPS only (a year; this host only, for taskgate does not own its domain's other names).
 * The gate's refusals carry the same (src/http/refusals.ts).
 */
const COMMON_HEADERS: readonly (readonly [string, string])[] = [
  ['Cache-Control', 'no-store'],
  ['X-Content-Type-Options', 'nosniff'],
];
const HSTS = 'max-age=31536000';

/** The common headers; and a connection that carried an authenticated request is kept longer. */
function everyAnswer(production: boolean): Koa.Middleware {
  return async (ctx, next) => {
    for (const [name, value] of COMMON_HEADERS) ctx.set(name, value);
    if (production) ctx.set('Strict-Transport-Security', HSTS);
    await next();
    if (ctx.state.caller !== undefined) keepConnection(ctx.req, ctx.res);
  };
}

/** Builds the Koa app without listening: `serve` listens, tests use supertest. */
export function createApp(deps: AppDeps): Koa {
  const { config, registry, runner, metrics } = deps;
  const given = [config, registry, runner].filter(Boolean).length;
  if (given !== 0 && given !== 3)
    throw new Error('createApp: the task routes need config, registry and runner');

  const app = new Koa();
  app.silent = true;
  // Paths are matched as the gate matches them, case and all: `/CRON/x` is no route, never a
  // task the gate did not guard.
  const router = new Router({ sensitive: true });

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok', version: VERSION };
  });
  router.get('/readyz', async (ctx) => {
    const problem = await checkDatabase(deps.db);
    if (!problem) {
      ctx.body = { status: 'ok' };
      return;
    }
    // The driver's words name hosts, ports, databases and roles: they go to the log only.
    ctx.log.warn({ reason: problem }, 'readiness check: database unavailable');
    ctx.status = 503;
    ctx.set('Retry-After', String(RETRY_AFTER_SECONDS));
    ctx.body = { status: 'error', code: 'DATABASE_UNAVAILABLE', message: 'the database is not available' };
  });

  const limits = {
    limit: config?.http.authFailureLimit ?? 10,
    windowSeconds: config?.http.authFailureWindowSeconds ?? 900,
  };
  let status: Koa.Middleware | null = null;
  let gate: Koa.Middleware | null = null;
  let unclaimed: Koa.Middleware | null = null;
  if (config && registry && runner) {
    trustProxy(app, config.http.trustProxyHops);
    const limiter = new FailedAuthLimiter(limits);
    const seen = new SeenSignatures(deps.db);
    const { qstash } = config.http;
    const guard = authenticate({
      secrets: new SecretSet(config.secrets),
      limiter,
      seen,
      toleranceSeconds: config.http.signatureToleranceSeconds,
      qstash: qstash ? new QstashVerifier(qstash, seen) : null,
      guards: guardedPaths(registry),
      refusals: deps.refusals ?? new Refusals(deps.logger, metrics),
    });
    gate = guard.gate;
    unclaimed = guard.unclaimed;
    addCronRoutes(router, { db: deps.db, config, registry, runner }, guard);
    // The status page is never open: it asks for STATUS_TOKEN or a secret. In production it is
    // served only when STATUS_TOKEN is set, as /metrics is only with METRICS_TOKEN.
    if (config.http.statusToken || config.env !== 'production') {
      status = statusRoutes({ db: deps.db, config, registry, runner, limiter, seen });
    }
  }
  // In production /metrics is served only behind METRICS_TOKEN: its task names, counts and
  // last successes are for the operator, and each scrape costs a database read.
  const metricsToken = config?.http.metricsToken;
  if (metrics && (metricsToken || config?.env !== 'production')) {
    router.get('/metrics', metricsRoute(metrics, metricsToken, new FailedAuthLimiter(limits)));
  }

  const { onRequest } = deps;
  if (onRequest) {
    app.use((_ctx, next) => {
      onRequest();
      return next();
    });
  }
  // First, before the request's logger: most refusals are answered here, for next to nothing.
  if (gate) app.use(gate);
  app.use(everyAnswer(config?.env === 'production'));
  app.use(requestLog(deps.logger, metrics));
  app.use(errorHandler());
  // Behind one path check, so that /cron requests pay nothing for the status page.
  const statusPage = status;
  if (statusPage) app.use((ctx, next) => (isStatusPath(ctx.path) ? statusPage(ctx, next) : next()));
  if (unclaimed) app.use(unclaimed);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
