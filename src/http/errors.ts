import type { Middleware } from 'koa';
import { isTaskgateError, TaskgateError } from '../errors.js';

/** koa/body parser errors carry a status; they become TaskgateErrors with a stable code. */
function fromHttpError(error: { status?: number; type?: string; message?: string }): TaskgateError | null {
  switch (error.status) {
    case 400:
      return new TaskgateError(
        error.type === 'entity.parse.failed' || /JSON/i.test(error.message ?? '')
          ? 'INVALID_JSON'
          : 'BAD_REQUEST',
        error.type === 'entity.parse.failed'
          ? 'the request body is not valid JSON'
          : (error.message ?? 'bad request'),
      );
    case 413:
      return new TaskgateError('PAYLOAD_TOO_LARGE', 'the request body is too large');
    case 415:
      return new TaskgateError(
        'UNSUPPORTED_MEDIA_TYPE',
        'the request body must be JSON (Content-Type: application/json)',
      );
    default:
      return null;
  }
}

/**
 * The one error handler, first in the chain: every error becomes `{status: "error", code, message,
 * ...details}` with the status its code maps to. Messages of server errors stay in the log.
 */
export function errorHandler(): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (caught) {
      const error = isTaskgateError(caught)
        ? caught
        : (fromHttpError(caught as { status?: number }) ??
          new TaskgateError('INTERNAL', 'internal error', {}, { cause: caught }));
      if (error.code === 'INTERNAL') ctx.log?.error({ err: caught }, 'request failed');
      ctx.status = error.status;
      ctx.body = {
        status: 'error',
        code: error.code,
        message: error.expose ? error.message : 'internal error',
        ...error.details,
      };
    }
  };
}
