import { isTaskgateError } from '../errors.js';

/** The CLI's exit codes; sysexits' EX_TEMPFAIL (75) says "try again later". */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 75 } as const;

/** The one place an error becomes an exit code. */
export function exitCodeFor(error: unknown): number {
  return isTaskgateError(error) ? error.exitCode : EXIT.failed;
}
