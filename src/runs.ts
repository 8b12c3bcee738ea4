import type { EntityManager } from '@mikro-orm/postgresql';
import { type RunStatus, type TaskRun, TaskRunSchema } from './db/entities.js';

/**
 * The run history's SQL, one named function a statement. Writes are plain SQL because their
 * shape matters (ON CONFLICT for idempotency keys, durations from the database clock); reads go
 * through the TaskRun entity.
 */
export interface RunRecord {
  id: string;
  task: string;
  trigger: string;
  params: Record<string, unknown>;
  dryRun: boolean;
  status: RunStatus;
  result: unknown;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  idempotencyKey: string | null;
}

type Row = Record<string, unknown>;

const iso = (value: unknown): string | null =>
  value === null || value === undefined ? null : new Date(value as string | Date).toISOString();

function fromRow(row: Row): RunRecord {
  return {
    id: String(row.id),
    task: String(row.task),
    trigger: String(row.trigger),
    params: (row.params ?? {}) as Record<string, unknown>,
    dryRun: Boolean(row.dry_run ?? row.dryRun),
    status: row.status as RunStatus,
    result: row.result ?? null,
    error: (row.error as string | null) ?? null,
    startedAt: iso(row.started_at ?? row.startedAt)!,
    finishedAt: iso(row.finished_at ?? row.finishedAt),
    durationMs: (row.duration_ms ?? row.durationMs ?? null) as number | null,
    idempotencyKey: (row.idempotency_key ?? row.idempotencyKey ?? null) as string | null,
  };
}

export function toRunRecord(entity: TaskRun): RunRecord {
  return fromRow(entity as unknown as Row);
}

export interface NewRun {
  task: string;
  trigger: string;
  params: Record<string, unknown>;
  dryRun: boolean;
  idempotencyKey: string | null;
}

/**
 * Records a run as `running`, its start time from the database clock. Returns null when a run of
 * the task with the same idempotency key already exists.
 */
export async function insertRun(em: EntityManager, run: NewRun): Promise<RunRecord | null> {
  const rows: Row[] = await em.getConnection().execute(
    `insert into taskgate.task_run (task, trigger, params, dry_run, status, idempotency_key)
     values (?, ?, ?::jsonb, ?, 'running', ?)
     on conflict (task, idempotency_key) where idempotency_key is not null do nothing
     returning *`,
    [run.task, run.trigger, JSON.stringify(run.params), run.dryRun, run.idempotencyKey],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function finishRun(
  em: EntityManager,
  id: string,
  outcome: { status: Exclude<RunStatus, 'running'>; result?: unknown; error?: string | null },
): Promise<RunRecord> {
  const rows: Row[] = await em.getConnection().execute(
    `update taskgate.task_run
        set status = ?, result = ?::jsonb, error = ?, finished_at = clock_timestamp(),
            duration_ms = round(extract(epoch from clock_timestamp() - started_at) * 1000)
      where id = ?
      returning *`,
    [
      outcome.status,
      outcome.result === undefined ? null : JSON.stringify(outcome.result),
      outcome.error ?? null,
      id,
    ],
  );
  return fromRow(rows[0]!);
}

/**
 * Marks a task's `running` rows as abandoned. Call only while holding the task's lock: then no
 * live process is running it, so those rows were left by a process that died.
 */
export async function markAbandoned(em: EntityManager, task: string): Promise<string[]> {
  const rows: Row[] = await em.getConnection().execute(
    `update taskgate.task_run
        set status = 'abandoned', finished_at = clock_timestamp(),
            error = 'the process running it stopped before it finished'
      where task = ? and status = 'running'
      returning id`,
    [task],
  );
  return rows.map((r) => String(r.id));
}

/** Tasks that have a run recorded as `running`, live or left by a process that died. */
export async function tasksWithRunningRows(em: EntityManager): Promise<string[]> {
  const rows: Row[] = await em
    .getConnection()
    .execute(`select distinct task from taskgate.task_run where status = 'running'`);
  return rows.map((r) => String(r.task));
}

export async function findRun(em: EntityManager, id: string): Promise<RunRecord | null> {
  if (!/^[0-9a-f-]{36}$/i.test(id)) return null;
  const run = await em.fork().findOne(TaskRunSchema, { id });
  return run ? toRunRecord(run) : null;
}

export async function findRunByIdempotencyKey(em: EntityManager, task: string, key: string) {
  const run = await em.fork().findOne(TaskRunSchema, { task, idempotencyKey: key });
  return run ? toRunRecord(run) : null;
}

export async function findRunningRun(em: EntityManager, task: string): Promise<RunRecord | null> {
  const run = await em
    .fork()
    .findOne(TaskRunSchema, { task, status: 'running' }, { orderBy: { startedAt: 'desc' } });
  return run ? toRunRecord(run) : null;
}

export async function listRuns(
  em: EntityManager,
  filter: { task?: string; status?: RunStatus; limit: number },
): Promise<RunRecord[]> {
  const where: Record<string, unknown> = {};
  if (filter.task) where.task = filter.task;
  if (filter.status) where.status = filter.status;
  const runs = await em
    .fork()
    .find(TaskRunSchema, where, { orderBy: { startedAt: 'desc' }, limit: filter.limit });
  return runs.map(toRunRecord);
}

/** The latest run and the latest successful run of each task, for listings and overdue checks. */
export async function latestRuns(
  em: EntityManager,
): Promise<Map<string, { last: RunRecord | null; lastSuccess: RunRecord | null }>> {
  const rows: Row[] = await em.getConnection().execute(
    `select r.*, 'last' as kind from (
       select distinct on (task) * from taskgate.task_run order by task, started_at desc) r
     union all
     select s.*, 'success' as kind from (
       select distinct on (task) * from taskgate.task_run where status = 'succeeded' and not dry_run
        order by task, started_at desc) s`,
  );
  const latest = new Map<string, { last: RunRecord | null; lastSuccess: RunRecord | null }>();
  for (const row of rows) {
    const entry = latest.get(String(row.task)) ?? { last: null, lastSuccess: null };
    if (row.kind === 'last') entry.last = fromRow(row);
    else entry.lastSuccess = fromRow(row);
    latest.set(String(row.task), entry);
  }
  return latest;
}

/** Deletes finished runs that started before `before`, at most `limit` of them. */
export async function deleteRunsBefore(em: EntityManager, before: Date, limit: number): Promise<number> {
  const rows: Row[] = await em.getConnection().execute(
    `with doomed as (
       select id from taskgate.task_run
        where started_at < ? and status <> 'running'
        order by started_at limit ?)
     delete from taskgate.task_run r using doomed where r.id = doomed.id
     returning r.id`,
    [before, limit],
  );
  return rows.length;
}
