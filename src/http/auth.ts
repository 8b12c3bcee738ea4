import type { Context, Middleware } from 'koa';
import { TaskgateError } from '../errors.js';
import type { Attempt, FailedAuthLimiter } from './limiter.js';
import type { QstashVerifier } from './qstash.js';
import type { Refusals } from './refusals.js';
import type { SecretSet } from './secrets.js';
import type { SeenSignatures } from './seenSignatures.js';
import {
  matchingDigests,
  type ParsedSignature,
  parseSignature,
  requestId,
  type SignedRequest,
} from './signature.js';

export interface AuthOptions {
  secrets: SecretSet;
  limiter: FailedAuthLimiter;
  /** Null refuses every signed request (no store to stop replays). */
  seen: SeenSignatures | null;
  toleranceSeconds: number;
  /** Null refuses every request signed by QStash (no signing keys configured). */
  qstash?: QstashVerifier | null;
  /** The paths behind the guard: `gate` checks these and lets every other path by. */
  guards: (path: string) => boolean;
  /** Answers, counts and logs the refusals `gate` decides. */
  refusals: Refusals;
  now?: () => number;
}

/** Why a request was refused: logged for operators, never told to the caller. */
type Refusal =
  | 'no secret configured'
  | 'no credentials'
  | 'ambiguous credentials'
  | 'wrong secret'
  | 'malformed authorization'
  | 'malformed signature'
  | 'signature outside tolerance'
  | 'wrong signature'
  | 'replayed signature'
  | 'qstash not configured'
  | 'wrong qstash signature'
  | 'replayed qstash signature'
  | 'get trigger with another credential'
  | 'not seen by the gate'
  | 'signed request no route checked'
  | 'blocked address already sending a signed body';

/**
 * One answer for every refusal, so a caller cannot tell a missing secret from a wrong one, an
 * unknown task from a known one, or an unset secret from a set one. Being the same every time,
 * it is made once: refusing a flood of bad requests then costs no stack capture per request.
 */
const UNAUTHORIZED = Object.freeze(new TaskgateError('UNAUTHORIZED', 'missing or invalid credentials'));

/** The headers that carry credentials; each may be sent once. */
const CREDENTIAL_HEADERS = [
  'authorization',
  'x-cron-secret',
  'x-cron-signature',
  'upstash-signature',
] as const;

/**
 * The credential headers, or null when one is sent twice: Node keeps the first Authorization and
 * joins the others with commas, so a repeated header would be read in a way the caller may not
 * mean. Ambiguous credentials are refused.
 */
export function credentialHeaders(
  ctx: Context,
): Record<(typeof CREDENTIAL_HEADERS)[number], string | undefined> | null {
  const distinct = ctx.req.headersDistinct;
  const found = {
    authorization: undefined,
    'x-cron-secret': undefined,
    'x-cron-signature': undefined,
    'upstash-signature': undefined,
  } as Record<(typeof CREDENTIAL_HEADERS)[number], string | undefined>;
  for (const name of CREDENTIAL_HEADERS) {
    const values = distinct[name];
    if (!values) continue;
    if (values.length !== 1) return null;
    found[name] = values[0];
  }
  return found;
}

const BEARER = /^Bearer +(\S+) *$/i;

/** The token of `Authorization: Bearer <token>`, or null for any other shape. */
export function bearerToken(authorization: string): string | null {
  return BEARER.exec(authorization)?.[1] ?? null;
}

/**
 * Ends a refused request: 401 (or 429 when the address is blocked), WWW-Authenticate, and, when
 * the caller announced a body that has not been read, the connection closed so that a body it is
 * still sending holds nothing. A refusal without a body keeps its connection: there is nothing to
 * drain, and a scheduler retrying on it pays no new handshake.
 */
export function refuse(
  ctx: Context,
  limiter: FailedAuthLimiter,
  attempt: Attempt,
  reason: string,
  realm: string,
): never {
  ctx.state.refused = reason;
  if (unreadBody(ctx)) ctx.set('Connection', 'close');
  ctx.set('WWW-Authenticate', `Bearer realm="${realm}"`);
  throw limiter.refuse(ctx, attempt, UNAUTHORIZED);
}

/** The request says a body follows (a length above 0, or chunks) and nothing has read it to its end. */
function unreadBody(ctx: Context): boolean {
  const { headers } = ctx.req;
  const announced = headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
  return announced && !ctx.req.readableEnded;
}

/** A signature waiting for the body it covers: taskgate's own, or a QStash token. */
type Signature = { kind: 'taskgate'; parsed: ParsedSignature } | { kind: 'qstash'; token: string };

type PendingSignature = Signature & { attempt: Attempt };

/** What the routes behind the secret need of authenticate(); its gate runs before the router. */
export interface Guard {
  /** Checks a signature, which covers the body (and refuses what the gate did not let through). */
  afterBody: Middleware;
  /** Refuses every credential but `Authorization: Bearer` (GET triggers). */
  bearerOnly: Middleware;
}

/** Who vouched for a request the guard let through: what the run records as its trigger. */
export type Caller = 'secret' | 'signature' | 'qstash';

/**
 * Lets a request through only with valid credentials: `X-Cron-Secret`, `Authorization: Bearer`,
 * `X-Cron-Signature`, or (with QStash's signing keys set) `Upstash-Signature`. Every credential presented must be valid and at least one must be
 * presented; anything else is 401 (429 once the address has failed too often). Runs before the
 * route looks anything up, so nothing about tasks or runs is told to a caller without them.
 *
 * Two steps, with the body read between them: `gate`, first in the app (before the request's
 * logger and the router), decides everything the headers can (a secret, a bearer token, a
 * malformed or stale signature) before a byte of body is read, and answers those refusals itself
 * (see Refusals); only a signature, which covers the body, waits for `afterBody`, on the route.
 * Its attempt is counted as it starts and given back when the signature is good. `afterBody`
 * also refuses a request the gate did not let through, so a route the gate's paths miss fails
 * closed.
 */
export function authenticate(options: AuthOptions): Guard & { gate: Middleware; unclaimed: Middleware } {
  const now = options.now ?? (() => Date.now());
  const { limiter, secrets } = options;

  function fromHeaders(ctx: Context): Refusal | Signature | null {
    if (secrets.empty) return 'no secret configured';
    const headers = credentialHeaders(ctx);
    if (!headers) return 'ambiguous credentials';
    const {
      'x-cron-secret': secret,
      authorization,
      'x-cron-signature': signature,
      'upstash-signature': upstash,
    } = headers;
    if (upstash !== undefined) {
      // A QStash request carries its token alone; anything beside it is not QStash's doing.
      if (secret !== undefined || authorization !== undefined || signature !== undefined) {
        return 'ambiguous credentials';
      }
      return options.qstash ? { kind: 'qstash', token: upstash.trim() } : 'qstash not configured';
    }
    if (secret === undefined && authorization === undefined && signature === undefined) {
      return 'no credentials';
    }
    if (secret !== undefined && !secrets.matches(secret.trim())) return 'wrong secret';
    if (authorization !== undefined) {
      const token = bearerToken(authorization);
      if (token === null) return 'malformed authorization';
      if (!secrets.matches(token)) return 'wrong secret';
    }
    if (signature === undefined) return null;
    const parsed = parseSignature(signature);
    if (!parsed) return 'malformed signature';
    if (Math.abs(now() / 1000 - parsed.timestamp) > options.toleranceSeconds) {
      return 'signature outside tolerance';
    }
    return { kind: 'taskgate', parsed };
  }

  /**
   * Signed bodies being read, by limiter key. A signature is judged only once its body is in, so
   * a blocked address is still read, to let a genuine signature through, but one body at a time:
   * whoever trickles bodies behind fake signatures holds one connection, not hundreds.
   */
  const readingBodies = new Map<string, number>();

  const gate: Middleware = async (ctx, next) => {
    if (!options.guards(ctx.path)) return next();
    const started = performance.now();
    const verdict = fromHeaders(ctx);
    if (verdict === null) {
      ctx.state.caller = 'secret' satisfies Caller;
      return next();
    }
    const attempt = limiter.start(ctx.ip);
    const reading = readingBodies.get(attempt.key) ?? 0;
    if (typeof verdict === 'string' || (attempt.blockedFor > 0 && reading > 0)) {
      const reason: Refusal =
        typeof verdict === 'string' ? verdict : 'blocked address already sending a signed body';
      options.refusals.answer(ctx, limiter.errorFor(attempt, UNAUTHORIZED), reason, started, {
        close: unreadBody(ctx),
        retryAfterSeconds: attempt.blockedFor,
      });
      return;
    }
    readingBodies.set(attempt.key, reading + 1);
    ctx.res.once('close', () => {
      const left = (readingBodies.get(attempt.key) ?? 1) - 1;
      if (left > 0) readingBodies.set(attempt.key, left);
      else readingBodies.delete(attempt.key);
    });
    ctx.state.pendingSignature = { ...verdict, attempt } satisfies PendingSignature;
    await next();
  };

  /** Why a signed request is refused, or null when it is genuine and seen for the first time. */
  async function checkSignature(pending: Signature, request: SignedRequest): Promise<Refusal | null> {
    if (pending.kind === 'qstash') return options.qstash!.verify(pending.token, request);
    const digests = matchingDigests(pending.parsed, request, secrets.secrets);
    if (digests.length === 0) return 'wrong signature';
    // Checked last, after the HMAC: only genuine requests ever reach the database. What is
    // recorded is the signed request itself, so that it is accepted once whichever of the
    // secrets' digests it carries, and each digest that matched, which is what earlier versions
    // of taskgate record and look up: during a rolling upgrade a request accepted by a replica of
    // either version is a replay to the other.
    const expiresAt = new Date((pending.parsed.timestamp + options.toleranceSeconds) * 1000);
    const first =
      options.seen &&
      (await options.seen.remember([requestId(pending.parsed, request), ...digests], expiresAt));
    return first ? null : 'replayed signature';
  }

  const afterBody: Middleware = async (ctx, next) => {
    const pending = ctx.state.pendingSignature as PendingSignature | undefined;
    if (!pending) {
      if (ctx.state.caller === undefined) {
        refuse(ctx, limiter, limiter.start(ctx.ip), 'not seen by the gate', 'taskgate');
      }
      return next();
    }
    const request = {
      method: ctx.method,
      path: ctx.originalUrl,
      body: (ctx.request as { rawBody?: string }).rawBody ?? '',
    };
    const refusal = await checkSignature(pending, request);
    if (refusal) refuse(ctx, limiter, pending.attempt, refusal, 'taskgate');
    limiter.succeeded(pending.attempt);
    ctx.state.caller = (pending.kind === 'qstash' ? 'qstash' : 'signature') satisfies Caller;
    await next();
  };

  /**
   * For GET triggers (Vercel Cron): the secret as `Authorization: Bearer` and nothing else. A
   * GET carries no body for a signature to cover, and a GET that runs a task should be one a
   * scheduler was set up to send, not one any client can make with whatever it holds.
   */
  const bearerOnly: Middleware = async (ctx, next) => {
    const headers = credentialHeaders(ctx);
    const others = headers
      ? (headers['x-cron-secret'] ?? headers['x-cron-signature'] ?? headers['upstash-signature'])
      : undefined;
    if (others !== undefined) {
      // A signature's attempt was counted at the gate already: one request, one attempt.
      const pending = ctx.state.pendingSignature as PendingSignature | undefined;
      const attempt = pending?.attempt ?? limiter.start(ctx.ip);
      refuse(ctx, limiter, attempt, 'get trigger with another credential', 'taskgate');
    }
    await next();
  };

  /**
   * Around the router: a signed request that no route checked (no route for its path, another
   * method, HEAD, OPTIONS) is refused as a failed attempt, so that a well-formed fake signature
   * learns no more than any other wrong credential: not which routes exist, nor their methods.
   */
  const unclaimed: Middleware = async (ctx, next) => {
    await next();
    const pending = ctx.state.pendingSignature as PendingSignature | undefined;
    if (pending && ctx.state.caller === undefined) {
      ctx.remove('Allow');
      refuse(ctx, limiter, pending.attempt, 'signed request no route checked', 'taskgate');
    }
  };

  return { gate, afterBody, bearerOnly, unclaimed };
}
