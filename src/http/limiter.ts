import { isIPv4, isIPv6 } from 'node:net';
import type { Context } from 'koa';
import { LRUCache } from 'lru-cache';
import { TaskgateError } from '../errors.js';

/**
 * How many addresses the limiter remembers at most, whatever a flood of forged or rotating
 * addresses: a few MB at the cap (flood after flood, bench/limiter.ts).
 */
export const MAX_TRACKED_ADDRESSES = 10_000;

export interface FailedAuthLimiterOptions {
  /** Failed attempts one address may make per window; after that it is answered 429. */
  limit: number;
  windowSeconds: number;
  /** The least recently seen address is forgotten first beyond this many (default MAX_TRACKED_ADDRESSES). */
  maxAddresses?: number;
  now?: () => number;
}

/** Made once: a blocked address may send a flood, and each answer should cost next to nothing. */
const TOO_MANY_REQUESTS = Object.freeze(
  new TaskgateError(
    'TOO_MANY_REQUESTS',
    'too many failed authentications: try again after Retry-After seconds',
  ),
);

interface Entry {
  attempts: number;
  /** When the window that started with the first counted attempt ends (ms). */
  resetAt: number;
}

/** An attempt counted when it started, before its outcome is known. */
export interface Attempt {
  key: string;
  /** Seconds the address was blocked for when the attempt started; 0 when it was not. */
  blockedFor: number;
  resetAt: number;
}

/** Expands an IPv6 address to its eight groups, or null. */
function ipv6Groups(address: string): number[] | null {
  const halves = address.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string) =>
    part === '' ? [] : part.split(':').map((group) => Number.parseInt(group, 16));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const groups =
    halves.length === 2 ? [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail] : head;
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : null;
}

/**
 * The key an address is counted under. One IPv6 host usually holds a whole /64 (SLAAC, privacy
 * addresses), so IPv6 addresses are counted by their /64; IPv4 (also IPv4-mapped IPv6) by the
 * address itself.
 */
export function limiterKey(address: string): string {
  if (isIPv4(address)) return address;
  const plain = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped && isIPv4(mapped[1]!)) return mapped[1]!;
  if (isIPv6(plain)) {
    const groups = ipv6Groups(plain);
    if (groups)
      return `${groups
        .slice(0, 4)
        .map((g) => g.toString(16))
        .join(':')}::/64`;
  }
  return plain;
}

/**
 * Counts failed authentications by client address (IPv6 by /64) and answers 429 to an address
 * that has failed `limit` times in its window, for the rest of that window. It only ever refuses
 * requests that fail: whoever presents a valid credential is let through, blocked address or
 * not, so a flood of bad requests from the scheduler's own address (a shared proxy) cannot
 * stop the scheduler.
 *
 * An attempt whose outcome waits on its body (a signature) is counted when it starts and given
 * back if it succeeds, so that many slow attempts at once cannot all get past the check.
 *
 * In memory, per process, in a least-recently-used map of at most `maxAddresses` entries: a failed
 * request never costs a database write, and memory stays bounded however many addresses call.
 * The price: each replica counts on its own, and a caller with more addresses than the cap can
 * push its own out (it still has to guess a 128-bit secret).
 */
export class FailedAuthLimiter {
  private readonly entries: LRUCache<string, Entry>;
  private readonly now: () => number;
  private readonly windowMs: number;

  constructor(private readonly options: FailedAuthLimiterOptions) {
    this.entries = new LRUCache({ max: options.maxAddresses ?? MAX_TRACKED_ADDRESSES });
    this.now = options.now ?? Date.now;
    this.windowMs = options.windowSeconds * 1000;
  }

  /** How many addresses (or /64s) are remembered now. */
  get size(): number {
    return this.entries.size;
  }

  /** Counts an attempt as it starts; synchronous, so concurrent attempts are counted in turn. */
  start(address: string): Attempt {
    const key = limiterKey(address);
    const now = this.now();
    let entry = this.entries.get(key);
    if (!entry || entry.resetAt <= now) {
      entry = { attempts: 0, resetAt: now + this.windowMs };
      this.entries.set(key, entry);
    }
    const blockedFor =
      entry.attempts >= this.options.limit ? Math.max(1, Math.ceil((entry.resetAt - now) / 1000)) : 0;
    entry.attempts++;
    return { key, blockedFor, resetAt: entry.resetAt };
  }

  /** Gives back an attempt that succeeded. */
  succeeded(attempt: Attempt): void {
    const entry = this.entries.peek(attempt.key);
    if (entry && entry.resetAt === attempt.resetAt && entry.attempts > 0) entry.attempts--;
  }

  /** Seconds until the address may fail again without 429, or 0 when it may now. */
  retryAfter(address: string): number {
    const entry = this.entries.peek(limiterKey(address));
    const now = this.now();
    if (!entry || entry.resetAt <= now || entry.attempts < this.options.limit) return 0;
    return Math.max(1, Math.ceil((entry.resetAt - now) / 1000));
  }

  /**
   * The error for an attempt that failed: 429 with Retry-After when the address was already
   * blocked as it started, else `refusal` (the 401).
   */
  refuse(ctx: Context, attempt: Attempt, refusal: TaskgateError): TaskgateError {
    const error = this.errorFor(attempt, refusal);
    if (error !== refusal) ctx.set('Retry-After', String(attempt.blockedFor));
    return error;
  }

  /** `refusal`, or 429 when the address was already blocked as the attempt started (see refuse). */
  errorFor(attempt: Attempt, refusal: TaskgateError): TaskgateError {
    return attempt.blockedFor === 0 ? refusal : TOO_MANY_REQUESTS;
  }
}
