import type { SqlClient } from '../db/sql.js';
import { TaskgateError } from '../errors.js';

/**
 * Paused tasks (`taskgate.task_pause`): while a task is paused no run of it starts, whoever
 * asks (the runner checks in its start transaction), and it is never overdue. A pause ends when
 * it is resumed or, when it was given an `until`, by itself at that moment (the database's clock).
 * One row per task keeps the last pause and its resume: who, when and why. Every pause and resume
 * is also an event in `taskgate.task_pause_event`, written by the same statement (a data-modifying
 * CTE), so the history holds exactly the pauses and resumes that happened.
 */
export interface TaskPause {
  task: string;
  reason: string;
  pausedBy: string;
  pausedAt: string;
  /** When the pause ends by itself; null: until resumed. */
  until: string | null;
}

/** A task's last pause and whether it holds now. */
export interface PauseState extends TaskPause {
  active: boolean;
  /** When the pause ended (resumed, or its `until` passed); null while it holds. */
  endedAt: string | null;
  resumedBy: string | null;
  resumeReason: string | null;
}

type Row = Record<string, unknown>;
const iso = (value: unknown): string | null =>
  value === null || value === undefined ? null : new Date(value as string | Date).toISOString();

const toPause = (row: Row): TaskPause => ({
  task: String(row.task),
  reason: String(row.reason),
  pausedBy: String(row.paused_by),
  pausedAt: iso(row.paused_at)!,
  until: iso(row.until),
});

const ACTIVE = `resumed_at is null and (until is null or until > clock_timestamp())`;

/** The pause holding the task now, if any. */
export async function activePause(db: SqlClient, task: string): Promise<TaskPause | null> {
  const { rows } = await db.query(`select * from taskgate.task_pause where task = $1 and ${ACTIVE}`, [task]);
  return rows[0] ? toPause(rows[0]) : null;
}

/** Every task's last pause, held or ended. */
export async function pauseStates(db: SqlClient): Promise<Map<string, PauseState>> {
  const { rows } = await db.query(
    `select *, (${ACTIVE}) as active,
            case when resumed_at is not null then resumed_at
                 when until <= clock_timestamp() then until end as ended_at
       from taskgate.task_pause`,
  );
  return new Map(
    rows.map((row) => [
      String(row.task),
      {
        ...toPause(row),
        active: Boolean(row.active),
        endedAt: iso(row.ended_at),
        resumedBy: (row.resumed_by ?? null) as string | null,
        resumeReason: (row.resume_reason ?? null) as string | null,
      },
    ]),
  );
}

/**
 * Pauses a task (a pause already holding is replaced: its reason and until are the new ones, and
 * that is an event too). Null when `until` is not ahead of the database's clock: nothing is
 * changed, and no event recorded, then.
 */
export async function pauseTask(
  db: SqlClient,
  pause: { task: string; reason: string; by: string; until: Date | null },
): Promise<TaskPause | null> {
  const { rows } = await db.query(
    `with paused as (
       insert into taskgate.task_pause as p (task, reason, paused_by, paused_at, until)
       select $1, $2, $3, clock_timestamp(), $4::timestamptz
        where $4::timestamptz is null or $4::timestamptz > clock_timestamp()
       on conflict (task) do update
          set reason = excluded.reason, paused_by = excluded.paused_by, paused_at = excluded.paused_at,
              until = excluded.until, resumed_at = null, resumed_by = null, resume_reason = null
       returning *),
     event as (
       insert into taskgate.task_pause_event (task, action, actor, reason, until, at)
       select task, 'paused', paused_by, reason, until, paused_at from paused)
     select * from paused`,
    [pause.task, pause.reason, pause.by, pause.until],
  );
  return rows[0] ? toPause(rows[0]) : null;
}

/**
 * Ends the task's pause now; null when it was not paused (nothing is changed, and no event
 * recorded, then: a resume that resumes nothing is not history).
 */
export async function resumeTask(
  db: SqlClient,
  resume: { task: string; by: string; reason: string | null },
): Promise<TaskPause | null> {
  const { rows } = await db.query(
    `with resumed as (
       update taskgate.task_pause
          set resumed_at = clock_timestamp(), resumed_by = $2, resume_reason = $3
        where task = $1 and ${ACTIVE}
        returning *),
     event as (
       insert into taskgate.task_pause_event (task, action, actor, reason, at)
       select task, 'resumed', resumed_by, resume_reason, resumed_at from resumed)
     select * from resumed`,
    [resume.task, resume.by, resume.reason],
  );
  return rows[0] ? toPause(rows[0]) : null;
}

/** One pause or resume of a task, as `taskgate.task_pause_event` keeps it. */
export interface PauseEvent {
  id: number;
  task: string;
  action: 'paused' | 'resumed';
  /** Who: `http` or `cli`, as every control records it. */
  by: string;
  reason: string | null;
  /** For a pause, when it was to end by itself; null: until resumed (and always for a resume). */
  until: string | null;
  at: string;
}

const toEvent = (row: Row): PauseEvent => ({
  id: Number(row.id),
  task: String(row.task),
  action: row.action as PauseEvent['action'],
  by: String(row.actor),
  reason: (row.reason ?? null) as string | null,
  until: iso(row.until),
  at: iso(row.at)!,
});

/** A task's pauses and resumes, newest first, at most `limit` of them. */
export async function pauseEvents(db: SqlClient, task: string, limit: number): Promise<PauseEvent[]> {
  const { rows } = await db.query(
    `select * from taskgate.task_pause_event where task = $1 order by at desc, id desc limit $2`,
    [task, limit],
  );
  return rows.map(toEvent);
}

/** The latest `perTask` pauses and resumes of each task, newest first: for the status page. */
export async function recentPauseEventsOf(
  db: SqlClient,
  tasks: readonly string[],
  perTask: number,
): Promise<Map<string, PauseEvent[]>> {
  const { rows } = await db.query(
    `select e.* from unnest($1::text[]) as t(task)
       cross join lateral (
         select * from taskgate.task_pause_event where task = t.task order by at desc, id desc limit $2) e`,
    [tasks, perTask],
  );
  const events = new Map<string, PauseEvent[]>(tasks.map((task) => [task, []]));
  for (const row of rows) events.get(String(row.task))?.push(toEvent(row));
  return events;
}

/** The refusal of a run while its task is paused: 423 with the reason and until when. */
export function pausedError(pause: TaskPause): TaskgateError {
  const until = pause.until ? ` until ${pause.until}` : ' until resumed';
  return new TaskgateError('TASK_PAUSED', `${pause.task} is paused${until}: ${pause.reason}`, {
    task: pause.task,
    reason: pause.reason,
    until: pause.until,
    pausedBy: pause.pausedBy,
    pausedAt: pause.pausedAt,
  });
}
