import type { Schedule } from './schedule.js';

/**
 * When a scheduled task missed its run. GitHub Actions starts scheduled runs late at busy times
 * (an hour is common, several hours happen) and drops some, so a task only counts as overdue once
 * its due moment plus a grace period has passed without a successful run.
 */
const MIN_DEFAULT_GRACE_MS = 60 * 60_000;
const MAX_DEFAULT_GRACE_MS = 6 * 60 * 60_000;

export interface OverdueState {
  /** When the next run was due after the last success (or first run); null when unknown. */
  dueAt: Date | null;
  /** How late that run may be before the task is overdue. */
  graceMs: number;
  /** `dueAt + graceMs` has passed. */
  overdue: boolean;
}

/**
 * The default grace of a schedule, measured from a due moment: the gap to the following one
 * (one missed run is tolerated up to the next), kept between one and six hours so that
 * frequent tasks do not page on every dropped run and daily or weekly ones do not wait a day.
 */
export function defaultGraceMs(schedule: Schedule, dueAt: Date): number {
  const following = schedule.next(dueAt);
  const period = following ? following.getTime() - dueAt.getTime() : MAX_DEFAULT_GRACE_MS;
  return Math.min(MAX_DEFAULT_GRACE_MS, Math.max(MIN_DEFAULT_GRACE_MS, period));
}

/**
 * `since` is when the last successful run started; for a task that never succeeded, when its
 * first run started. A task that has never run at all has nothing to be late against (a new
 * task is not overdue before its first scheduled moment has even been tried), so it is not
 * overdue here: an outside heartbeat monitor is what notices a schedule that never fires.
 */
export function overdueState(
  schedule: Schedule,
  since: Date | null,
  now: Date,
  graceMs?: number,
): OverdueState {
  const dueAt = since ? schedule.next(since) : null;
  const grace = graceMs ?? defaultGraceMs(schedule, dueAt ?? schedule.next(now) ?? now);
  return { dueAt, graceMs: grace, overdue: dueAt !== null && now.getTime() > dueAt.getTime() + grace };
}
