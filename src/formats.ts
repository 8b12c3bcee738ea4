import { z } from 'zod';
import { TaskgateError } from './errors.js';

/**
 * The small formats taskgate reads from text, each written once: a UUID (run ids), a whole number
 * (every count, limit and time in variables, query parameters and headers), and the range of a limit.
 */

/** The hex digits of a UUID, in its five groups. */
const UUID_DIGITS = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/** A UUID and nothing else, in either case (run ids are PostgreSQL's `uuid`, written lower case). */
export const UUID = new RegExp(`^${UUID_DIGITS}$`, 'i');

/** Every UUID within a text, in either case. */
export const uuidsIn = (text: string) => text.matchAll(new RegExp(UUID_DIGITS, 'gi'));

/**
 * A whole number: decimal digits and nothing else. No sign, no point, no exponent, no spaces:
 * `Number()` alone would take `1e3`, `0x10`, ` 7 ` and `''` (0).
 */
const WHOLE_NUMBER = /^\d+$/;

/** The number `text` writes, or null when it is not a whole number. */
export function wholeNumber(text: string | null | undefined): number | null {
  return text !== null && text !== undefined && WHOLE_NUMBER.test(text) ? Number(text) : null;
}

/** zod: text that must be a whole number, read as the number (`message` says what it is for). */
export const wholeNumberText = (message = 'must be a whole number') =>
  z.string().regex(WHOLE_NUMBER, message).transform(Number);

/** How many items a caller asks for (`limit`, `--limit`): 1 to `max`; else BAD_REQUEST naming the range. */
export function checkLimit(limit: number, max: number): number {
  if (Number.isInteger(limit) && limit >= 1 && limit <= max) return limit;
  throw new TaskgateError('BAD_REQUEST', `limit must be a whole number from 1 to ${max}`, { field: 'limit' });
}
