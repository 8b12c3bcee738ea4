import type { EntityManager } from '@mikro-orm/postgresql';
import { z } from 'zod';
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
}

/** Every task with its schedule in words, params as JSON Schema, last runs and next expected run. */
export async function taskCatalog(
  registry: Registry,
  em: EntityManager | null,
  now: Date,
): Promise<TaskInfo[]> {
  const latest = em ? await latestRuns(em) : new Map();
  return registry.list().map(({ definition, schedule }) => {
    const runs = latest.get(definition.name);
    return {
      name: definition.name,
      description: definition.description,
      schedule: schedule?.expression ?? null,
      scheduleText: schedule?.describe() ?? 'on demand only',
      params: z.toJSONSchema(definition.params, { io: 'input' }),
      lastRun: runs?.last ?? null,
      lastSuccess: runs?.lastSuccess ?? null,
      nextRunAt: schedule?.next(now)?.toISOString() ?? null,
    };
  });
}
