import type { SqlClient } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import { checkLimit } from '../formats.js';
import { type PauseEvent, pauseEvents, pauseTask, resumeTask, type TaskPause } from './pauses.js';
import type { Registry } from './registry.js';
import type { Runner, RunRequest } from './runner.js';
import { findRun, type RunRecord } from './runs.js';

/**
 * What an operator can do, the same from HTTP and from the CLI: cancel a run, pause and resume a
 * task, rerun a run. Each control names who asked (`http`, `cli`) and may say why; input is
 * checked before anything is changed, so a refused control changes nothing.
 */

/** The longest reason kept with a control. */
const REASON_MAX_CHARS = 500;

export interface ControlRequest {
  /** Who asked: `http` or `cli`. */
  by: string;
  reason?: string | null;
}

/** A reason as it is kept: trimmed, null when empty, refused when too long or not text. */
function checkReason(reason: unknown, options: { required?: boolean } = {}): string | null {
  if (reason !== undefined && reason !== null && typeof reason !== 'string') {
    throw new TaskgateError('BAD_REQUEST', 'reason must be text', { field: 'reason' });
  }
  const text = reason?.trim() || null;
  if (!text && options.required) {
    throw new TaskgateError('BAD_REQUEST', 'say why: a reason is required', { field: 'reason' });
  }
  if (text && text.length > REASON_MAX_CHARS) {
    throw new TaskgateError('BAD_REQUEST', `reason is longer than ${REASON_MAX_CHARS} characters`, {
      field: 'reason',
      maxChars: REASON_MAX_CHARS,
    });
  }
  return text;
}

/** `until` as an instant: an ISO 8601 date-time with its offset (or Z). */
function checkUntil(until: unknown): Date | null {
  if (until === undefined || until === null || until === '') return null;
  const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i;
  if (typeof until !== 'string' || !iso.test(until) || Number.isNaN(Date.parse(until))) {
    throw new TaskgateError('BAD_REQUEST', 'until must be an ISO 8601 date-time with a time zone', {
      field: 'until',
    });
  }
  return new Date(until);
}

/** The run, checked to exist and, when a task is named, to be a run of that task. */
async function runOf(db: SqlClient, registry: Registry, runId: string, task?: string): Promise<RunRecord> {
  if (task !== undefined) registry.require(task);
  const run = await findRun(db, runId);
  if (!run) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${runId}`);
  if (task !== undefined && run.task !== task) {
    throw new TaskgateError('BAD_REQUEST', `run ${runId} is a run of ${run.task}, not of ${task}`, {
      runId,
      runTask: run.task,
    });
  }
  return run;
}

export interface ControlDeps {
  db: SqlClient;
  registry: Registry;
  runner: Runner;
}

/** Asks a running run to stop (see Runner.cancel); the run as marked. */
export async function cancelRun(
  deps: ControlDeps,
  runId: string,
  request: ControlRequest & { task?: string },
): Promise<RunRecord> {
  const reason = checkReason(request.reason);
  await runOf(deps.db, deps.registry, runId, request.task);
  return deps.runner.cancel(runId, { by: request.by, reason });
}

/** What a rerun starts: the run's task, params and dry-run flag, linked to it. */
export async function rerunRequest(
  deps: ControlDeps,
  runId: string,
  request: ControlRequest & { task?: string; requestId?: string },
): Promise<RunRequest> {
  const reason = checkReason(request.reason);
  const run = await runOf(deps.db, deps.registry, runId, request.task);
  deps.registry.require(run.task);
  return {
    task: run.task,
    params: run.params,
    dryRun: run.dryRun,
    trigger: request.by,
    rerunOf: run.id,
    rerunReason: reason,
    requestId: request.requestId,
  };
}

/** Pauses a task: a reason is required; `until` (optional) must be ahead. */
export async function pause(
  deps: Omit<ControlDeps, 'runner'>,
  task: string,
  request: ControlRequest & { until?: unknown },
): Promise<TaskPause> {
  const name = deps.registry.require(task).definition.name;
  const reason = checkReason(request.reason, { required: true })!;
  const until = checkUntil(request.until);
  const paused = await pauseTask(deps.db, { task: name, reason, by: request.by, until });
  if (!paused) throw new TaskgateError('BAD_REQUEST', 'until must be in the future', { field: 'until' });
  return paused;
}

/** Ends a task's pause; the pause that was ended, or null when the task was not paused. */
export async function resume(
  deps: Omit<ControlDeps, 'runner'>,
  task: string,
  request: ControlRequest,
): Promise<TaskPause | null> {
  const name = deps.registry.require(task).definition.name;
  const reason = checkReason(request.reason);
  return resumeTask(deps.db, { task: name, by: request.by, reason });
}

/** The most pause events one read returns (`taskgate pauses --limit`, `GET /cron/<task>/pauses?limit=`). */
export const PAUSE_HISTORY_MAX = 500;

/** A registered task's pauses and resumes, newest first, at most `limit` (1 to PAUSE_HISTORY_MAX). */
export async function pauseHistory(
  deps: Omit<ControlDeps, 'runner'>,
  task: string,
  limit: number,
): Promise<PauseEvent[]> {
  const name = deps.registry.require(task).definition.name;
  return pauseEvents(deps.db, name, checkLimit(limit, PAUSE_HISTORY_MAX));
}
