/**
 * How a caller waits for a taskgate that may be asleep. One source for the TypeScript client
 * (src/remote/client.ts, `taskgate trigger`) and the generated workflow's bash (src/scheduling/scripts/,
 * given these through each step's `env:`), so that both retry the same answers for as long.
 */

/** Answers that mean "not now": a proxy in front of a waking host, the limiter, a time-out. */
export const TRANSIENT_STATUSES: readonly number[] = [408, 429, 502, 503, 504];

/** How long to keep retrying while a sleeping host wakes (Render's free tier takes 30 to 60 s). */
export const DEFAULT_WAKE_TIMEOUT_MS = 300_000;

/** Pause between retries; a Retry-After header wins. */
export const DEFAULT_RETRY_DELAY_MS = 5_000;
