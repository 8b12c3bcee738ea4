import { z } from 'zod';
import type { SqlClient } from '../db/sql.js';
import { overdueState } from './overdue.js';
import { type PauseState, pauseStates, type TaskPause } from './pauses.js';
import type { Registry } from './registry.js';
import { firstRunStarts, latestRuns, type RunRecord } from './runs.js';
import { localTime } from './zone.js';

/** What taskgate tells about a task: `GET /cron`, `taskgate list` and `taskgate status`. */
export interface TaskInfo {
  name: string;
  description: string;
  schedule: string | null;
  scheduleText: string;
  params: unknown;
  /** The environment variables the task reads (its own settings), as JSON Schema; null when none. */
  settings: unknown;
  lastRun: RunRecord | null;
  lastSuccess: RunRecord | null;
  /** The next scheduled moment, in UTC. */
  nextRunAt: string | null;
  /** The zone the schedule is read in (`UTC`, or its IANA name). */
  timeZone: string;
  /** The next scheduled moment in that zone, with its offset (`2026-12-08T03:00:00+01:00`). */
  nextRunLocal: string | null;
  /** Whether a slot missed while taskgate was down or asleep runs once when it starts or wakes. */
  catchUp: 'latest' | 'none';
  /** When the next run was due after the last success (or the first run); null when unknown or on demand. */
  dueAt: string | null;
  /** How late a due run may be before the task is overdue; null for on-demand tasks. */
  graceMs: number | null;
  /** The due run is later than its grace: a missed run. Never while the task is paused. */
  overdue: boolean;
  /** An operator paused the task: no run of it starts. */
  paused: boolean;
  /** The pause holding now (who, when, why, until when); null when not paused. */
  pause: TaskPause | null;
}

/**
 * Every task with its schedule in words, params as JSON Schema, last runs, next expected run and
 * whether it is overdue. Without a database no run is known and nothing is overdue.
 */
export async function taskCatalog(registry: Registry, db: SqlClient | null, now: Date): Promise<TaskInfo[]> {
  const [latest, firsts, pauses] = db
    ? await Promise.all([latestRuns(db), firstRunStarts(db), pauseStates(db)])
    : [new Map<string, never>(), new Map<string, Date>(), new Map<string, PauseState>()];
  const described = await Promise.all(registry.list().map(({ schedule }) => schedule?.describe()));
  return registry.list().map(({ definition, schedule, params }, i) => {
    const runs = latest.get(definition.name);
    const lastSuccess: RunRecord | null = runs?.lastSuccess ?? null;
    const pause = pauses.get(definition.name);
    const paused = pause?.active ?? false;
    const reference = lastSuccess ? new Date(lastSuccess.startedAt) : (firsts.get(definition.name) ?? null);
    // The runs a pause held back were not missed: after a pause the task is due again from its end.
    const since = reference && pause?.endedAt ? laterOf(reference, new Date(pause.endedAt)) : reference;
    const state = schedule ? overdueState(schedule, since, now, definition.graceMs) : null;
    const next = schedule?.next(now) ?? null;
    return {
      name: definition.name,
      description: definition.description,
      schedule: schedule?.expression ?? null,
      scheduleText: described[i] ?? 'on demand only',
      // The registered schema: it holds the defaults the project's config gives.
      params: z.toJSONSchema(params, { io: 'input' }),
      settings: definition.settings ? z.toJSONSchema(definition.settings, { io: 'input' }) : null,
      lastRun: runs?.last ?? null,
      lastSuccess,
      nextRunAt: next?.toISOString() ?? null,
      timeZone: schedule?.zone ?? 'UTC',
      nextRunLocal: next && schedule ? localTime(next, schedule.zone) : null,
      catchUp: definition.catchUp ?? 'latest',
      dueAt: state?.dueAt?.toISOString() ?? null,
      graceMs: state?.graceMs ?? null,
      overdue: !paused && (state?.overdue ?? false),
      paused,
      pause:
        paused && pause
          ? {
              task: pause.task,
              reason: pause.reason,
              pausedBy: pause.pausedBy,
              pausedAt: pause.pausedAt,
              until: pause.until,
            }
          : null,
    };
  });
}

const laterOf = (a: Date, b: Date): Date => (a > b ? a : b);
