import type { SqlClient } from '../db/sql.js';
import { UUID } from '../formats.js';
import { defaultGraceMs } from './overdue.js';
import type { RegisteredTask } from './registry.js';
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
export const EARLY_WINDOW_MAX_MS = 5 * 60_000;

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

/** The slot a scheduled fire at `now` (the database clock) is for; null when the schedule has none yet. */
export function slotAt(schedule: Schedule, now: Date): Date | null {
  const next = schedule.next(now);
  if (next && next.getTime() - now.getTime() <= earlyWindowMs(schedule, next)) return next;
  return schedule.previous(now);
}

/** The database clock, as the slot of a fire is decided on it. */
export async function databaseNow(db: SqlClient): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('select now() as now');
  return rows[0]!.now;
}

/**
 * Counts a fire of a slot that was answered with its existing run. The count is for reading: in a
 * transaction it is committed without waiting for the disk (`synchronous_commit = off`), so that a
 * duplicate fire is answered as fast as a read (a crash may lose the last few counts, never a run).
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
export type SlotFate =
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
