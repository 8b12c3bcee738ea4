import type { SqlClient } from '../db/sql.js';
import { UUID } from '../formats.js';
import { defaultGraceMs } from './overdue.js';
import type { RegisteredTask } from './registry.js';
import { fromRow, type RunRecord } from './runs.js';
import type { Schedule } from './schedule.js';

/**
 * Slots: a scheduled run is identified by its task and its scheduled moment, whoever fires it.
 *
 * Schedulers are unreliable in both directions: GitHub drops scheduled runs and starts others
 * hours late, Vercel Cron never retries, QStash delivers at least once, and a host's clock may
 * read a few seconds before the moment it fires for. So taskgate accepts the same slot from any
 * number of schedulers (the generated workflow, Vercel's GET, QStash, a plain HTTP cron,
 * `taskgate trigger --scheduled`, its own clock) and runs it once. The fire is mapped to its slot
 * on the database clock, never a host's: a fire belongs to the latest scheduled moment at or
 * before it, or to the next one when it comes at most a short early window before that (a clock
 * a little fast, a scheduler a little eager). The slot is the run's idempotency key
 * (`slot:<moment>`), so the unique index on keys makes one run of it: a second fire gets that
 * run back (counted as a duplicate), and a slot whose run failed, was interrupted or abandoned
 * is run again, as its next attempt (docs/schedulers.md, Slots).
 */

/** The most slots of a task one look reports. */
export const MAX_SLOTS = 100;

/** The most a fire may come before its slot and still be for it. */
const EARLY_WINDOW_MAX_MS = 5 * 60_000;

/** The idempotency key of a slot's runs. */
export const slotKey = (slot: Date): string => `slot:${slot.toISOString()}`;

/** Who fired a slot: the scheduler's name as recorded as the run's trigger (`github`, `clock`, ...). */
export const SCHEDULER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** How early before `slot` a fire still counts for it: 5 minutes, or half the gap before it. */
export function earlyWindowMs(schedule: Schedule, slot: Date): number {
  const before = schedule.previous(new Date(slot.getTime() - 1));
  const gap = before ? slot.getTime() - before.getTime() : Number.POSITIVE_INFINITY;
  return Math.min(EARLY_WINDOW_MAX_MS, gap / 2);
}

/**
 * The slot a fire at `at` is for, and the span of fire times that are all for it: from its early
 * window's opening to the next slot's. A fire at `at` is for the latest scheduled moment at or
 * before it, or for the next one when it comes at most that one's early window before it.
 */
export interface SlotSpan {
  slot: Date;
  /** The first fire time that is for `slot`. */
  from: Date;
  /** The first fire time that is for the next slot; null when there is none. */
  until: Date | null;
}

/** Each schedule's latest span: the fires of a slot come close together, and croner's walk costs ~0.1 ms. */
const latestSpans = new WeakMap<Schedule, SlotSpan>();

const within = (span: SlotSpan, at: Date) =>
  at.getTime() >= span.from.getTime() && (span.until === null || at.getTime() < span.until.getTime());

/** The span of fire times that `at` is in; null when the schedule has no slot yet. */
export function slotSpanAt(schedule: Schedule, at: Date): SlotSpan | null {
  const cached = latestSpans.get(schedule);
  if (cached && within(cached, at)) return cached;
  const next = schedule.next(at);
  const early = next !== null && next.getTime() - at.getTime() <= earlyWindowMs(schedule, next);
  const slot = early ? next : schedule.previous(at);
  if (!slot) return null;
  const after = early ? schedule.next(slot) : next;
  const span: SlotSpan = {
    slot,
    from: new Date(slot.getTime() - earlyWindowMs(schedule, slot)),
    // The next slot's early window, from the gap to it: the slot is the one before it.
    until: after
      ? new Date(after.getTime() - Math.min(EARLY_WINDOW_MAX_MS, (after.getTime() - slot.getTime()) / 2))
      : null,
  };
  latestSpans.set(schedule, span);
  return span;
}

/** The slot a scheduled fire at `now` (the database clock) is for; null when the schedule has none yet. */
export function slotAt(schedule: Schedule, now: Date): Date | null {
  return slotSpanAt(schedule, now)?.slot ?? null;
}

/** The database clock, as the slot of a fire is decided on it. */
export async function databaseNow(db: SqlClient): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('select now() as now');
  return rows[0]!.now;
}

/**
 * A fire of a slot whose run succeeded (what most fires of a slot are, after the first), answered
 * in one statement and no transaction: the slot is the one this host's clock says, and the
 * database takes its run only if its own clock says the same (its reading is inside the slot's
 * span), then counts the fire, committed without waiting for the disk as countDuplicateFire's
 * count is. Null for every other fire (the slot's first, a retry of a failed one, a host clock
 * that disagrees at a slot's edge): the claim decides those in its transaction, on the database
 * clock. `fire.slot` names the slot instead (catch-up).
 */
export async function answerRanSlot(
  db: SqlClient,
  task: string,
  fire: { schedule: Schedule; slot?: Date },
): Promise<RunRecord | null> {
  const span = fire.slot
    ? { slot: fire.slot, from: null, until: null }
    : slotSpanAt(fire.schedule, new Date());
  if (!span) return null;
  // One row at most: a key has one succeeded run (the unique index on keys of running and
  // succeeded runs). set_config holds for this statement's own transaction, up to its commit.
  const { rows } = await db.query(
    `update taskgate.task_run set duplicate_fires = duplicate_fires + 1
      where task = $1 and idempotency_key = $2 and status = 'succeeded'
        and ($3::timestamptz is null or now() >= $3) and ($4::timestamptz is null or now() < $4)
        and set_config('synchronous_commit', 'off', true) = 'off'
      returning *`,
    [task, slotKey(span.slot), span.from, span.until],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * Counts a fire of a slot that was answered with its existing run. The count is for reading: in
 * its own transaction (the two statements of one simple query are one) or the claim's, it is
 * committed without waiting for the disk (`synchronous_commit = off`), so that a duplicate fire
 * is answered as fast as a read (a crash may lose the last few counts, never a run).
 */
export async function countDuplicateFire(db: SqlClient, runId: string): Promise<void> {
  // One round trip: the simple protocol takes two statements, but no parameters, so the id (a
  // UUID the database gave) is written in, checked first.
  if (!UUID.test(runId)) throw new Error(`not a run id: ${runId}`);
  await db.query(
    `set local synchronous_commit = off;
     update taskgate.task_run set duplicate_fires = duplicate_fires + 1 where id = '${runId}'`,
  );
}

/**
 * Whether a run covers `slot` already, so that catch-up leaves it: a run of the slot that
 * succeeded or is running, or any successful run started since the slot's early window opened
 * (a run by hand, or one recorded before runs had slots).
 */
export async function slotCovered(
  db: SqlClient,
  task: string,
  slot: Date,
  earlyMs: number,
): Promise<boolean> {
  const { rows } = await db.query(
    `select exists (
       select from taskgate.task_run
        where task = $1 and not dry_run
          and ((slot = $2 and status in ('running', 'succeeded'))
               or (status = 'succeeded' and started_at >= $2::timestamptz - make_interval(secs => $3::float8 / 1000)))
     ) as covered`,
    [task, slot, earlyMs],
  );
  return Boolean(rows[0]?.covered);
}

/** What became of one slot. */
type SlotFate =
  /** A run of it succeeded (`caughtUp` when catch-up ran it). */
  | 'ran'
  | 'running'
  /** Its latest attempt failed, was interrupted, abandoned or cancelled; a next fire tries again. */
  | 'failed'
  /** Past its grace with no run: no scheduler fired it, and catch-up did not either. */
  | 'missed'
  /** Not past its grace yet, and no run so far. */
  | 'due';

export interface SlotReport {
  task: string;
  slot: string;
  fate: SlotFate;
  /** The scheduler that fired it first (the trigger of its first attempt). */
  firedBy: string | null;
  /** Run by catch-up at start or wake, not by a scheduler. */
  caughtUp: boolean;
  /** Later fires answered with its run instead of a second one. */
  duplicates: number;
  attempts: number;
  /** Its latest run. */
  runId: string | null;
}

interface SlotRow {
  slot: Date;
  status: string;
  trigger: string;
  id: string;
  attempt: number;
  duplicate_fires: number;
}

/** The latest `count` slots of each scheduled task, newest first, with what became of each. */
export async function recentSlotsOf(
  db: SqlClient,
  tasks: RegisteredTask[],
  now: Date,
  count: number,
): Promise<Map<string, SlotReport[]>> {
  const slots = new Map<string, SlotReport[]>();
  for (const task of tasks) {
    const { schedule, definition } = task;
    if (!schedule) continue;
    const latest = slotAt(schedule, now);
    const graceMs = definition.graceMs ?? (latest ? defaultGraceMs(schedule, latest) : 0);
    slots.set(
      definition.name,
      await recentSlots(db, { name: definition.name, schedule, graceMs }, now, count),
    );
  }
  return slots;
}

/**
 * The latest `count` slots of a task, newest first, with what became of each: from its schedule
 * (so that a slot no one fired shows as missed) and its runs.
 */
async function recentSlots(
  db: SqlClient,
  task: { name: string; schedule: Schedule; graceMs: number },
  now: Date,
  count: number,
): Promise<SlotReport[]> {
  const moments: Date[] = [];
  // From the slot a fire now would be for: the next one, in its early window, may have run already.
  for (let at: Date | null = slotAt(task.schedule, now); at && moments.length < count; ) {
    moments.push(at);
    at = task.schedule.previous(new Date(at.getTime() - 1));
  }
  if (moments.length === 0) return [];
  const { rows } = await db.query<SlotRow & Record<string, unknown>>(
    `select slot, status, trigger, id, attempt, duplicate_fires from taskgate.task_run
      where task = $1 and slot >= $2 and slot <= $3
      order by slot, attempt`,
    [task.name, moments.at(-1), moments[0]],
  );
  const bySlot = new Map<number, SlotRow[]>();
  for (const row of rows) {
    const key = new Date(row.slot).getTime();
    bySlot.set(key, [...(bySlot.get(key) ?? []), row]);
  }
  return moments.map((moment) => {
    const runs = bySlot.get(moment.getTime()) ?? [];
    const first = runs[0];
    const latest = runs.at(-1);
    let fate: SlotFate;
    if (runs.some((r) => r.status === 'succeeded')) fate = 'ran';
    else if (latest?.status === 'running') fate = 'running';
    else if (latest) fate = 'failed';
    else fate = now.getTime() > moment.getTime() + task.graceMs ? 'missed' : 'due';
    return {
      task: task.name,
      slot: moment.toISOString(),
      fate,
      firedBy: first?.trigger ?? null,
      caughtUp: first?.trigger === 'catch-up',
      duplicates: runs.reduce((n, r) => n + Number(r.duplicate_fires), 0),
      attempts: runs.length,
      runId: latest?.id ?? null,
    };
  });
}
