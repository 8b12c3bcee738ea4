import type { Context, Middleware } from 'koa';
import { TaskgateError } from '../errors.js';
import type { FailedAuthLimiter } from './limiter.js';
import type { SecretSet } from './secrets.js';
import type { SeenSignatures } from './seenSignatures.js';
import { matchingDigest, parseSignature } from './signature.js';

export interface AuthOptions {
  secrets: SecretSet;
  limiter: FailedAuthLimiter;
  /** Null refuses every signed request (no store to stop replays). */
  seen: SeenSignatures | null;
  toleranceSeconds: number;
  now?: () => number;
}

/** Why a request was refused: logged for operators, never told to the caller. */
type Refusal =
  | 'no secret configured'
  | 'no credentials'
  | 'wrong secret'
  | 'malformed authorization'
  | 'malformed signature'
  | 'signature outside tolerance'
  | 'wrong signature'
  | 'replayed signature';

/**
 * One answer for every refusal, so a caller cannot tell a missing secret from a wrong one, an
 * unknown task from a known one, or an unset secret from a set one. Being the same every time,
 * it is made once: refusing a flood of bad requests then costs no stack capture per request.
 */
export const UNAUTHORIZED = Object.freeze(
  new TaskgateError('UNAUTHORIZED', 'missing or invalid credentials'),
);

const header = (ctx: Context, name: string): string | undefined => {
  const value = ctx.req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

/**
 * Lets a request through only with valid credentials: `X-Cron-Secret`, `Authorization: Bearer`,
 * or `X-Cron-Signature`. Every credential presented must be valid and at least one must be
 * presented; anything else is 401, and counts as a failure for the caller's address. Runs before
 * the route looks anything up, so nothing about tasks or runs is told to a caller without them.
 */
export function authenticate(options: AuthOptions): Middleware {
  const now = options.now ?? (() => Date.now());

  async function refusal(ctx: Context): Promise<Refusal | null> {
    if (options.secrets.empty) return 'no secret configured';
    const secret = header(ctx, 'x-cron-secret');
    const authorization = header(ctx, 'authorization');
    const signature = header(ctx, 'x-cron-signature');
    if (secret === undefined && authorization === undefined && signature === undefined) {
      return 'no credentials';
    }
    if (secret !== undefined && !options.secrets.matches(secret.trim())) return 'wrong secret';
    if (authorization !== undefined) {
      const bearer = /^Bearer +(\S+) *$/i.exec(authorization);
      if (!bearer) return 'malformed authorization';
      if (!options.secrets.matches(bearer[1]!)) return 'wrong secret';
    }
    if (signature !== undefined) {
      const parsed = parseSignature(signature);
      if (!parsed) return 'malformed signature';
      const nowSeconds = now() / 1000;
      if (Math.abs(nowSeconds - parsed.timestamp) > options.toleranceSeconds) {
        return 'signature outside tolerance';
      }
      const request = {
        method: ctx.method,
        path: ctx.originalUrl,
        body: (ctx.request as { rawBody?: string }).rawBody ?? '',
      };
      const digest = matchingDigest(parsed, request, options.secrets.secrets);
      if (!digest) return 'wrong signature';
      // Checked last, after the HMAC: only genuine signatures ever reach the database.
      const expiresAt = new Date((parsed.timestamp + options.toleranceSeconds) * 1000);
      if (!options.seen || !(await options.seen.remember(digest, expiresAt))) return 'replayed signature';
    }
    return null;
  }

  return async (ctx, next) => {
    const reason = await refusal(ctx);
    if (reason) {
      await options.limiter.recordFailure(ctx.ip);
      ctx.state.refused = reason;
      ctx.set('WWW-Authenticate', 'Bearer realm="taskgate"');
      throw UNAUTHORIZED;
    }
    await next();
  };
}
