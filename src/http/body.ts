import { bodyParser } from '@koa/bodyparser';
import type { Middleware } from 'koa';
import { TaskgateError } from '../errors.js';

/** Task params are a few fields; anything larger is a mistake or an attack. */
const BODY_LIMIT_BYTES = 16 * 1024;

interface BodyError {
  status?: number;
  /** zlib's, when a compressed body does not decompress: Z_DATA_ERROR, Z_BUF_ERROR, ERR__ERROR_FORMAT_… (brotli) */
  code?: string;
  type?: string;
  body?: unknown;
  message?: string;
}

/** The one answer to a body that is not JSON, whatever noticed it. */
function notJson(): TaskgateError {
  return new TaskgateError(
    'UNSUPPORTED_MEDIA_TYPE',
    'the request body must be JSON in UTF-8 (Content-Type: application/json)',
  );
}

/** co-body and raw-body errors, told as taskgate errors with stable codes: the one translation of body errors. */
export function bodyError(error: BodyError): TaskgateError | BodyError {
  if (error.type === 'entity.too.large' || error.status === 413) {
    return new TaskgateError(
      'PAYLOAD_TOO_LARGE',
      `the request body is larger than ${BODY_LIMIT_BYTES} bytes`,
      {
        limitBytes: BODY_LIMIT_BYTES,
      },
    );
  }
  if (typeof error.code === 'string' && /^(Z_|ERR__|ERR_ZLIB|ERR_BROTLI)/.test(error.code)) {
    return new TaskgateError('BAD_REQUEST', 'the request body does not decode as its Content-Encoding says');
  }
  if (error.status === 415) return notJson();
  // co-body keeps the text it could not parse on `body`: that is what marks a JSON syntax error.
  if (error.status === 400 && 'body' in error) {
    return new TaskgateError('INVALID_JSON', 'the request body is not a valid JSON object');
  }
  if (error.status === 400) return new TaskgateError('BAD_REQUEST', 'the request body could not be read');
  return error;
}

/**
 * Reads a JSON body of at most BODY_LIMIT_BYTES into `ctx.request.body`, keeping the text in
 * `ctx.request.rawBody` for signature checks. An empty body is `{}`; a body that is not JSON is
 * 415; a malformed one 400; a large one 413 (before it is read, when Content-Length says so).
 */
export function jsonBody(): Middleware {
  const parse = bodyParser({
    enableTypes: ['json'],
    jsonLimit: BODY_LIMIT_BYTES,
    jsonStrict: true,
    encoding: 'utf-8',
  });
  return async (ctx, next) => {
    const length = Number(ctx.get('content-length') || 0);
    const hasBody = ctx.get('transfer-encoding') !== '' || length > 0;
    if (hasBody && !ctx.is('json')) throw notJson();
    if (!hasBody) {
      // Most triggers carry no body (the seed's curl line): nothing to read or parse.
      ctx.request.body = {};
      ctx.request.rawBody = '';
      return next();
    }
    try {
      await parse(ctx, async () => undefined);
    } catch (error) {
      throw bodyError(error as BodyError);
    }
    await next();
  };
}
