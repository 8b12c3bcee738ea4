import { defineEntity, type InferEntity, p } from '@mikro-orm/core';
import { RUN_STATUSES } from '../core/runs.js';

/** taskgate keeps its own tables in this schema, apart from the application's tables. */
export const TASKGATE_SCHEMA = 'taskgate';

/** One row per run of a task, whoever triggered it (see migration 0001 for the DDL). */
export const TaskRunSchema = defineEntity({
  name: 'TaskRun',
  tableName: 'task_run',
  schema: TASKGATE_SCHEMA,
  properties: {
    id: p.uuid().primary(),
    task: p.text(),
    trigger: p.text(),
    params: p.json<Record<string, unknown>>(),
    dryRun: p.boolean(),
    status: p.enum([...RUN_STATUSES]),
    result: p.json<unknown>().nullable(),
    error: p.text().nullable(),
    startedAt: p.datetime(),
    finishedAt: p.datetime().nullable(),
    durationMs: p.integer().nullable(),
    idempotencyKey: p.text().nullable(),
  },
});

export type TaskRun = InferEntity<typeof TaskRunSchema>;

export const entities = [TaskRunSchema];
