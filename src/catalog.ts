import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
import { overdueState } from './overdue.js';
import type { Registry } from './registry.js';
import { latestRuns, type RunRecord } from './runs.js';

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
 * When each task's first real (not dry) run started: the reference for a task that has never
 * succeeded, so that one failing since it was added still turns overdue.
 */
export async function firstRunStarts(em: EntityManager): Promise<Map<string, Date>> {
  const rows: { task: string; started_at: string | Date }[] = await em
    .getConnection()
    .execute(
      'select task, min(started_at) as started_at from taskgate.task_run where not dry_run group by task',
    );
  return new Map(rows.map((row) => [row.task, new Date(row.started_at)]));
}

/**
 * Every task with its schedule in words, params as JSON Schema, last runs, next expected run and
 * whether it is overdue. Without an EntityManager no run is known and nothing is overdue.
 */
export async function taskCatalog(
  registry: Registry,
  em: EntityManager | null,
  now: Date,
): Promise<TaskInfo[]> {
  const [latest, firsts] = em
    ? await Promise.all([latestRuns(em), firstRunStarts(em)])
    : [new Map<string, never>(), new Map<string, Date>()];
  return registry.list().map(({ definition, schedule }) => {
    const runs = latest.get(definition.name);
    const lastSuccess: RunRecord | null = runs?.lastSuccess ?? null;
    const since = lastSuccess ? new Date(lastSuccess.startedAt) : (firsts.get(definition.name) ?? null);
    const state = schedule ? overdueState(schedule, since, now, definition.graceMs) : null;
    return {
      name: definition.name,
      description: definition.description,
      schedule: schedule?.expression ?? null,
      scheduleText: schedule?.describe() ?? 'on demand only',
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
