import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import type { Logger } from '../logger.js';
import type { Metrics } from '../monitoring/metrics.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The caller's X-Request-Id when it is sane, else a new one. */
export function requestIdOf(ctx: Context): string {
  const given = ctx.get('x-request-id');
  return REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * Gives each request an id (the caller's X-Request-Id when sane) and a child logger carrying it,
 * then writes one line (a warning when its credentials were refused, saying why) and counts the
 * request once it is answered. Headers are never logged: they are where the credentials are.
 */
export function requestLog(logger: Logger, metrics?: Metrics): Middleware {
  return async (ctx, next) => {
    ctx.requestId = requestIdOf(ctx);
    ctx.set('X-Request-Id', ctx.requestId);
    ctx.log = logger.child({ requestId: ctx.requestId });
    const started = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const line = {
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        ms: Math.round(seconds * 1000),
        ip: ctx.ip,
        ...(ctx.state.runId ? { runId: ctx.state.runId } : {}),
        ...(ctx.state.refused ? { refused: ctx.state.refused } : {}),
      };
      // A refused credential is worth an operator's look; the reason never includes what was sent.
      if (ctx.state.refused) ctx.log.warn(line, 'request refused');
      else ctx.log.info(line, 'request');
      if (metrics) {
        // The route pattern, never the raw path: task names and run ids would make labels unbounded.
        const route = (ctx as { _matchedRoute?: string | RegExp })._matchedRoute;
        metrics.observeRequest(route ? String(route) : 'unmatched', ctx.method, ctx.status, seconds);
      }
    }
  };
}
