import { z } from 'zod';
import type { SqlClient } from './db/sql.js';
import { overdueState } from './overdue.js';
import type { Registry } from './registry.js';
import { firstRunStarts, latestRuns, type RunRecord } from './runs.js';

/** What taskgate tells about a task: `GET /cron`, `taskgate list` and `taskgate status`. */
export interface TaskInfo {
  name: string;
  description: string;
  schedule: string | null;
  scheduleText: string;
  params: unknown;
  lastRun: RunRecord | null;
  lastSuccess: RunRecord | null;
  nextRunAt: string | null;
  /** When the next run was due after the last success (or the first run); null when unknown or on demand. */
  dueAt: string | null;
  /** How late a due run may be before the task is overdue; null for on-demand tasks. */
  graceMs: number | null;
  /** The due run is later than its grace: a missed run. */
  overdue: boolean;
}

/**
 * Every task with its schedule in words, params as JSON Schema, last runs, next expected run and
 * whether it is overdue. Without a database no run is known and nothing is overdue.
 */
export async function taskCatalog(registry: Registry, db: SqlClient | null, now: Date): Promise<TaskInfo[]> {
  const [latest, firsts] = db
    ? await Promise.all([latestRuns(db), firstRunStarts(db)])
    : [new Map<string, never>(), new Map<string, Date>()];
  const described = await Promise.all(registry.list().map(({ schedule }) => schedule?.describe()));
  return registry.list().map(({ definition, schedule }, i) => {
    const runs = latest.get(definition.name);
    const lastSuccess: RunRecord | null = runs?.lastSuccess ?? null;
    const since = lastSuccess ? new Date(lastSuccess.startedAt) : (firsts.get(definition.name) ?? null);
    const state = schedule ? overdueState(schedule, since, now, definition.graceMs) : null;
    return {
      name: definition.name,
      description: definition.description,
      schedule: schedule?.expression ?? null,
      scheduleText: described[i] ?? 'on demand only',
      params: z.toJSONSchema(definition.params, { io: 'input' }),
      lastRun: runs?.last ?? null,
      lastSuccess,
      nextRunAt: schedule?.next(now)?.toISOString() ?? null,
      dueAt: state?.dueAt?.toISOString() ?? null,
      graceMs: state?.graceMs ?? null,
      overdue: state?.overdue ?? false,
    };
  });
}
