import type { Context } from 'koa';
import type { TaskgateError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../monitoring/metrics.js';
import { errorBody } from './errors.js';
import { requestIdOf } from './requestLog.js';

/** How long one address's refusals for one reason are summed up before the sum is logged. */
const REFUSAL_LOG_WINDOW_MS = 10_000;
/** Distinct (address, reason) pairs kept per window; refusals beyond are summed up together. */
const MAX_REFUSAL_KEYS = 1_000;

/** The route label of requests refused before any route was looked up. */
const REFUSED_ROUTE = 'refused';

interface Tally {
  ip: string;
  refused: string;
  /** Refusals after the one that was logged in full. */
  more: number;
}

/**
 * Answers the refusals decided from the headers alone (most of them: no, wrong or malformed
 * credentials), at the front of the app and without the request's own logger, so that a flood
 * of them costs little more than bare Koa. Each is counted in metrics. The first refusal of an
 * address for a reason is logged as every request is ("request refused", with its request id);
 * the others of that address and reason within REFUSAL_LOG_WINDOW_MS are summed up in one line
 * when the window ends ("requests refused", with `count`), so a flood is one line per address
 * and reason every 10 s, and nothing is dropped from the count.
 */
export class Refusals {
  private tallies = new Map<string, Tally>();
  /** Refusals from pairs beyond MAX_REFUSAL_KEYS in this window. */
  private overflow = 0;
  private timer: NodeJS.Timeout | null = null;
  /** Each error's body, serialized once: the refusals are a few frozen errors. */
  private readonly bodies = new WeakMap<TaskgateError, string>();

  constructor(
    private readonly logger: Logger,
    private readonly metrics?: Metrics,
    private readonly windowMs = REFUSAL_LOG_WINDOW_MS,
  ) {}

  /**
   * Answers `error` (401, or 429 from the limiter) for `reason`, and counts and logs it. The
   * answer is written straight to Node's response (`ctx.respond = false`): its headers and body
   * are the same every time, so Koa has nothing to work out. `close` asks the client to close
   * the connection (a body it sent is left unread); a 429 says when to come back.
   */
  answer(
    ctx: Context,
    error: TaskgateError,
    reason: string,
    started: number,
    { close, retryAfterSeconds }: { close: boolean; retryAfterSeconds: number },
  ): void {
    const requestId = requestIdOf(ctx);
    const body = this.body(error);
    ctx.respond = false;
    ctx.status = error.status;
    ctx.res.writeHead(error.status, [
      'X-Request-Id',
      requestId,
      'WWW-Authenticate',
      'Bearer realm="taskgate"',
      'Content-Type',
      'application/json; charset=utf-8',
      'Content-Length',
      String(Buffer.byteLength(body)),
      'Cache-Control',
      'no-store',
      'X-Content-Type-Options',
      'nosniff',
      ...(close ? ['Connection', 'close'] : []),
      ...(error.status === 429 ? ['Retry-After', String(retryAfterSeconds)] : []),
    ]);
    ctx.res.end(body);
    const seconds = (performance.now() - started) / 1000;
    this.metrics?.observeRequest(REFUSED_ROUTE, ctx.method, error.status, seconds);
    this.record(ctx, requestId, reason, seconds);
  }

  /** Logs what is left of the window now (at shutdown, and when a window ends). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const seconds = this.windowMs / 1000;
    for (const { ip, refused, more } of this.tallies.values()) {
      if (more > 0) this.logger.warn({ ip, refused, count: more, seconds }, 'requests refused');
    }
    if (this.overflow > 0) {
      this.logger.warn(
        { count: this.overflow, seconds, addresses: `more than ${MAX_REFUSAL_KEYS}` },
        'requests refused',
      );
    }
    this.tallies = new Map();
    this.overflow = 0;
  }

  private body(error: TaskgateError): string {
    let body = this.bodies.get(error);
    if (body === undefined) {
      body = JSON.stringify(errorBody(error));
      this.bodies.set(error, body);
    }
    return body;
  }

  private record(ctx: Context, requestId: string, refused: string, seconds: number): void {
    const ip = ctx.ip;
    const key = `${ip} ${refused}`;
    const tally = this.tallies.get(key);
    if (tally) {
      tally.more++;
      return;
    }
    if (this.tallies.size >= MAX_REFUSAL_KEYS) {
      this.overflow++;
      return;
    }
    this.tallies.set(key, { ip, refused, more: 0 });
    this.logger.warn(
      {
        requestId,
        method: ctx.method,
        path: ctx.path,
        status: ctx.status,
        ms: Math.round(seconds * 1000),
        ip,
        refused,
      },
      'request refused',
    );
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.windowMs);
      this.timer.unref();
    }
  }
}
