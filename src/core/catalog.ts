import { z } from 'zod';
import type { SqlClient } from '../db/sql.js';
import { overdueState } from './overdue.js';
import { type PauseState, pauseStates, type TaskPause } from './pauses.js';
import type { Registry } from './registry.js';
import { firstRunStarts, latestRuns, type RunRecord } from './runs.js';

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
  nextRunAt: string | null;
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
  return registry.list().map(({ definition, schedule }, i) => {
    const runs = latest.get(definition.name);
    const lastSuccess: RunRecord | null = runs?.lastSuccess ?? null;
    const pause = pauses.get(definition.name);
    const paused = pause?.active ?? false;
    const reference = lastSuccess ? new Date(lastSuccess.startedAt) : (firsts.get(definition.name) ?? null);
    // The runs a pause held back were not missed: after a pause the task is due again from its end.
    const since = reference && pause?.endedAt ? laterOf(reference, new Date(pause.endedAt)) : reference;
    const state = schedule ? overdueState(schedule, since, now, definition.graceMs) : null;
    return {
      name: definition.name,
      description: definition.description,
      schedule: schedule?.expression ?? null,
      scheduleText: described[i] ?? 'on demand only',
      params: z.toJSONSchema(definition.params, { io: 'input' }),
      settings: definition.settings ? z.toJSONSchema(definition.settings, { io: 'input' }) : null,
      lastRun: runs?.last ?? null,
      lastSuccess,
      nextRunAt: schedule?.next(now)?.toISOString() ?? null,
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
