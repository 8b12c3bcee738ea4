import type { Middleware } from 'koa';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { TaskgateError } from '../errors.js';

export interface FailedAuthLimiterOptions {
  /** Failures one address may make per window; the next request is answered 429. */
  limit: number;
  windowSeconds: number;
}

/** Made once: a blocked address may send a flood, and each answer should cost next to nothing. */
const TOO_MANY_REQUESTS = Object.freeze(
  new TaskgateError(
    'TOO_MANY_REQUESTS',
    'too many failed authentications: try again after Retry-After seconds',
  ),
);

/**
 * Counts failed authentications by client address and turns an address away with 429 once it has
 * failed `limit` times in the window. Only failures are counted, so a caller that presents the
 * right secret is never slowed, however often it calls.
 *
 * In memory, per process: a failed request never costs a database write (which would let a flood
 * of bad requests load PostgreSQL), at the price of each replica counting on its own.
 */
export class FailedAuthLimiter {
  private readonly limiter: RateLimiterMemory;

  constructor(private readonly options: FailedAuthLimiterOptions) {
    this.limiter = new RateLimiterMemory({ points: options.limit, duration: options.windowSeconds });
  }

  /** Seconds until the address may try again, or 0 when it may now. */
  async retryAfter(address: string): Promise<number> {
    const state = await this.limiter.get(address);
    if (!state || state.consumedPoints < this.options.limit) return 0;
    return Math.max(1, Math.ceil(state.msBeforeNext / 1000));
  }

  async recordFailure(address: string): Promise<void> {
    await this.limiter.penalty(address, 1);
  }

  /** First in front of authentication: a blocked address is not even checked. */
  gate(): Middleware {
    return async (ctx, next) => {
      const seconds = await this.retryAfter(ctx.ip);
      if (seconds > 0) {
        ctx.set('Retry-After', String(seconds));
        throw TOO_MANY_REQUESTS;
      }
      await next();
    };
  }
}
