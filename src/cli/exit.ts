import { isTaskgateError, TaskgateError } from '../errors.js';
import type { RunRecord } from '../runs.js';

/** The CLI's exit codes; sysexits' EX_TEMPFAIL (75) says "try again later". */
export const EXIT = { ok: 0, failed: 1, usage: 2, busy: 75 } as const;

/** The one place an error becomes an exit code. */
export function exitCodeFor(error: unknown): number {
  return isTaskgateError(error) ? error.exitCode : EXIT.failed;
}

/** A finished run that did not succeed, as the error the CLI reports for it. */
export function runError(run: RunRecord): TaskgateError | null {
  if (run.status === 'succeeded') return null;
  const code =
    run.status === 'cancelled'
      ? 'TASK_CANCELLED'
      : run.status === 'interrupted'
        ? 'TASK_INTERRUPTED'
        : 'TASK_FAILED';
  return new TaskgateError(code, `${run.task} ${run.status}: ${run.error ?? 'no reason recorded'}`, {
    runId: run.id,
  });
}
