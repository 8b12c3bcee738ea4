import type { Context, Middleware } from 'koa';
import { isDatabaseUnavailable, translateDatabaseError } from '../db/sql.js';
import { isTaskgateError, TaskgateError } from '../errors.js';

/**
 * What the router left without a body: no route (404), or a route without this method (405, or
 * 501 for a method it does not know; both answered 405 with the Allow header the router set).
 */
export function unanswered(ctx: Context): TaskgateError | null {
  if (ctx.body !== undefined && ctx.body !== null) return null;
  if (ctx.status === 404) return new TaskgateError('NOT_FOUND', `no route for ${ctx.method} ${ctx.path}`);
  if (ctx.status === 405 || ctx.status === 501) {
    const allow = ctx.response.get('Allow');
    return new TaskgateError('METHOD_NOT_ALLOWED', `${ctx.method} is not allowed here`, {
      allowed: allow ? allow.split(/, */) : [],
    });
  }
  return null;
}

/** The JSON body of an error: what every error answer of taskgate says. */
export function errorBody(error: TaskgateError): Record<string, unknown> {
  return {
    status: 'error',
    code: error.code,
    message: error.expose ? error.message : 'internal error',
    ...error.details,
  };
}

function send(ctx: Context, error: TaskgateError): void {
  ctx.status = error.status;
  const retryAfter = error.details.retryAfterSeconds;
  if (typeof retryAfter === 'number') ctx.set('Retry-After', String(retryAfter));
  ctx.body = errorBody(error);
}

/**
 * Whatever was thrown, as a TaskgateError: the database being away is the client's cue to retry
 * (503 + Retry-After), not a server fault; anything unknown is INTERNAL, logged, its text kept.
 */
export function asTaskgateError(ctx: Context, thrown: unknown): TaskgateError {
  const caught = translateDatabaseError(thrown);
  if (isDatabaseUnavailable(caught)) ctx.log?.warn({ err: thrown }, 'database unavailable');
  const error = isTaskgateError(caught)
    ? caught
    : new TaskgateError('INTERNAL', 'internal error', {}, { cause: caught });
  if (error.code === 'INTERNAL') ctx.log?.error({ err: caught }, 'request failed');
  return error;
}

/**
 * The one error handler, first in the chain: every error becomes `{status: "error", code, message,
 * ...details}` with the status its code maps to. Messages of server errors stay in the log.
 */
export function errorHandler(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (thrown) {
      send(ctx, asTaskgateError(ctx, thrown));
      return;
    }
    const error = unanswered(ctx);
    if (error) send(ctx, error);
  };
}
