import { TaskgateError } from '../errors.js';

/** The fields of a run record (local, or as a remote taskgate sent it) that decide its outcome. */
export interface EndedRun {
  id?: unknown;
  task?: unknown;
  status?: unknown;
  error?: unknown;
  durationMs?: unknown;
  result?: unknown;
}

/**
 * What the end of a run means to whoever asked for it: nothing when it succeeded, else the one
 * error for it. `failed` is TASK_FAILED (the task threw), `cancelled` is TASK_CANCELLED (an
 * operator stopped it; what it did so far comes with it), and every other end (interrupted,
 * abandoned) is TASK_INTERRUPTED (it did not get to finish). HTTP, the CLI and the remote client
 * all answer with this, so a run reads the same whichever way it was started.
 */
export function runOutcomeError(run: EndedRun): TaskgateError | null {
  if (run.status === 'succeeded') return null;
  const code =
    run.status === 'failed'
      ? 'TASK_FAILED'
      : run.status === 'cancelled'
        ? 'TASK_CANCELLED'
        : 'TASK_INTERRUPTED';
  return new TaskgateError(code, `${run.task} ${run.status}: ${run.error ?? 'no reason recorded'}`, {
    task: run.task,
    runId: run.id,
    durationMs: run.durationMs ?? null,
    runStatus: run.status,
    ...(run.status === 'cancelled' ? { result: run.result ?? null } : {}),
  });
}
