import type { SqlClient } from '../db/sql.js';
import { checkLimit, UUID } from '../formats.js';

export const RUN_STATUSES = [
  'running',
  'succeeded',
  'failed',
  'interrupted',
  'abandoned',
  'cancelled',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/**
 * The run history's SQL, one named function a statement, each taking the connection (or the
 * transaction) to run on. Timestamps come from the database clock, so every replica agrees.
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
  /** 1 for a first run; n for the n-th run of one idempotency key (after failed attempts). */
  attempt: number;
  /** Set once an operator asked the run to stop: by whom (`http`, `cli`), when and why. */
  cancel: CancelRequest | null;
  /** The run this one repeats (`POST /cron/runs/:id/rerun`, `taskgate rerun`), and why. */
  rerunOf: string | null;
  rerunReason: string | null;
  /** The scheduled moment this run is for (src/core/slots.ts); null for a run asked for by hand. */
  slot: string | null;
  /** Fires of the same slot answered with this run instead of another one. */
  duplicateFires: number;
}

interface CancelRequest {
  requestedAt: string;
  by: string;
  reason: string | null;
}

/** What a run logged (src/core/runLog.ts): its first lines, and how many more were not kept. */
export interface RunLogRecord {
  lines: Record<string, unknown>[];
  bytes: number;
  dropped: number;
}

/** What a run has logged so far, saved while it goes on; `lines` left out when they did not change. */
export interface RunLogCheckpoint {
  lines?: Record<string, unknown>[];
  bytes: number;
  dropped: number;
}

type Row = Record<string, unknown>;

const iso = (value: unknown): string | null =>
  value === null || value === undefined ? null : new Date(value as string | Date).toISOString();

export function fromRow(row: Row): RunRecord {
  return {
    id: String(row.id),
    task: String(row.task),
    trigger: String(row.trigger),
    params: (row.params ?? {}) as Record<string, unknown>,
    dryRun: Boolean(row.dry_run),
    status: row.status as RunStatus,
    result: row.result ?? null,
    error: (row.error as string | null) ?? null,
    startedAt: iso(row.started_at)!,
    finishedAt: iso(row.finished_at),
    durationMs: (row.duration_ms ?? null) as number | null,
    idempotencyKey: (row.idempotency_key ?? null) as string | null,
    attempt: Number(row.attempt ?? 1),
    cancel: row.cancel_requested_at
      ? {
          requestedAt: iso(row.cancel_requested_at)!,
          by: String(row.cancel_requested_by),
          reason: (row.cancel_reason ?? null) as string | null,
        }
      : null,
    rerunOf: (row.rerun_of ?? null) as string | null,
    rerunReason: (row.rerun_reason ?? null) as string | null,
    slot: iso(row.slot),
    duplicateFires: Number(row.duplicate_fires ?? 0),
  };
}

export interface NewRun {
  id: string;
  task: string;
  trigger: string;
  params: Record<string, unknown>;
  dryRun: boolean;
  idempotencyKey: string | null;
  rerunOf?: string | null;
  rerunReason?: string | null;
  /** The slot it is for; its idempotency key is then the slot's. */
  slot?: Date | null;
}

/**
 * Records a run as `running`, its start time from the database clock. Returns null when a run of
 * the task with the same idempotency key is running or has succeeded (the unique index decides,
 * so concurrent requests with one key make one run). A key whose earlier runs all failed gets its
 * next attempt number.
 */
export async function insertRun(db: SqlClient, run: NewRun): Promise<RunRecord | null> {
  const { rows } = await db.query(
    `insert into taskgate.task_run
       (id, task, trigger, params, dry_run, status, idempotency_key, attempt, rerun_of, rerun_reason, slot)
     values ($1, $2, $3, $4::jsonb, $5, 'running', $6::text,
             case when $6::text is null then 1
                  else (select coalesce(max(attempt), 0) + 1 from taskgate.task_run
                         where task = $2 and idempotency_key = $6::text) end,
             $7, $8, $9)
     on conflict (task, idempotency_key)
       where idempotency_key is not null and status in ('running', 'succeeded') do nothing
     returning *`,
    [
      run.id,
      run.task,
      run.trigger,
      JSON.stringify(run.params),
      run.dryRun,
      run.idempotencyKey,
      run.rerunOf ?? null,
      run.rerunReason ?? null,
      run.slot ?? null,
    ],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export type RunOutcome = { status: Exclude<RunStatus, 'running'>; result?: unknown; error?: string | null };

/**
 * Records the end of a run, keeps what it logged (over its last checkpoint) and gives its lease
 * back, in one statement.
 * Fenced: only a run still `running` is ended, so a run that lost its lease (and was marked
 * abandoned by whoever took the task over) cannot overwrite that. Null when fenced off.
 */
export async function finishRun(
  db: SqlClient,
  id: string,
  outcome: RunOutcome,
  log?: RunLogRecord,
): Promise<RunRecord | null> {
  const { rows } = await db.query(
    `with finished as (
       update taskgate.task_run
          set status = $2, result = $3::jsonb, error = $4, finished_at = clock_timestamp(),
              duration_ms = round(extract(epoch from clock_timestamp() - started_at) * 1000)
        where id = $1 and status = 'running'
        returning *),
     logged as (
       insert into taskgate.run_log (run_id, lines, bytes, dropped)
       select id, $5::jsonb, $6, $7 from finished where $5::jsonb is not null
       on conflict (run_id) do update
          set lines = excluded.lines, bytes = excluded.bytes, dropped = excluded.dropped),
     released as (
       delete from taskgate.task_lease where run_id = $1)
     select * from finished`,
    [
      id,
      outcome.status,
      outcome.result === undefined ? null : JSON.stringify(outcome.result),
      outcome.error ?? null,
      log ? JSON.stringify(log.lines) : null,
      log?.bytes ?? 0,
      log?.dropped ?? 0,
    ],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * What whoever marks a run abandoned knows: its lease expired. Its process may still replace it
 * with what happened (explainAbandoned).
 */
const ABANDONED_ERROR =
  'its lease expired: the process running it stopped, or could not reach the database, before it finished';

/**
 * Marks a task's `running` rows as abandoned. Called by whoever has just taken the task's lease,
 * in the same transaction: the lease is theirs, so no live process owns those rows.
 */
export async function abandonRunsOf(db: SqlClient, task: string): Promise<string[]> {
  const { rows } = await db.query(
    `update taskgate.task_run
        set status = 'abandoned', finished_at = clock_timestamp(), error = $2,
            duration_ms = round(extract(epoch from clock_timestamp() - started_at) * 1000)
      where task = $1 and status = 'running'
      returning id`,
    [task, ABANDONED_ERROR],
  );
  return rows.map((r) => String(r.id));
}

/**
 * Marks every `running` run whose lease is gone or expired as abandoned: its process died, or
 * lost the database for longer than a lease. The lease's expiry is the bound after a crash.
 */
export async function abandonExpiredRuns(db: SqlClient): Promise<{ id: string; task: string }[]> {
  const { rows } = await db.query(
    `update taskgate.task_run r
        set status = 'abandoned', finished_at = clock_timestamp(), error = $1,
            duration_ms = round(extract(epoch from clock_timestamp() - r.started_at) * 1000)
      where r.status = 'running'
        and not exists (select from taskgate.task_lease l
                         where l.run_id = r.id and l.expires_at > clock_timestamp())
      returning r.id, r.task`,
    [ABANDONED_ERROR],
  );
  return rows.map((r) => ({ id: String(r.id), task: String(r.task) }));
}

/**
 * Replaces the reason of a run marked abandoned (ABANDONED_ERROR) with what its own process says
 * happened, when that process was alive after all (it lost its lease while the database was out
 * of reach, or while it was paused), keeping what the task returned and what it logged. Only the
 * reason written when it was abandoned is replaced: the run stays abandoned, and whoever took the
 * task over never writes this row again. Null when there is nothing to explain.
 */
export async function explainAbandoned(
  db: SqlClient,
  id: string,
  what: { error: string; result?: unknown },
  log?: RunLogRecord,
): Promise<RunRecord | null> {
  const { rows } = await db.query(
    `with explained as (
       update taskgate.task_run
          set error = $2, result = coalesce(result, $3::jsonb)
        where id = $1 and status = 'abandoned' and error = $4
        returning *),
     logged as (
       insert into taskgate.run_log (run_id, lines, bytes, dropped)
       select id, $5::jsonb, $6, $7 from explained where $5::jsonb is not null
       on conflict (run_id) do update
          set lines = excluded.lines, bytes = excluded.bytes, dropped = excluded.dropped)
     select * from explained`,
    [
      id,
      what.error,
      what.result === undefined ? null : JSON.stringify(what.result),
      ABANDONED_ERROR,
      log ? JSON.stringify(log.lines) : null,
      log?.bytes ?? 0,
      log?.dropped ?? 0,
    ],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * Saves what running runs have logged so far (src/core/runLog.ts), in one statement for all of
 * this process's runs: what an abandoned run keeps. Only a run still `running` is written, and a
 * checkpoint never replaces a later one (a log only grows: its bytes and its dropped count never
 * go down), so one that arrives after the run's end cannot shorten the log the end wrote.
 */
export async function checkpointRunLogs(
  db: SqlClient,
  checkpoints: { runId: string; log: RunLogCheckpoint }[],
): Promise<void> {
  await db.query(
    `with checkpoint as (
       select c.run_id, c.lines, c.bytes, c.dropped
         from jsonb_to_recordset($1::jsonb) as c(run_id uuid, lines jsonb, bytes integer, dropped integer)
         join taskgate.task_run r on r.id = c.run_id and r.status = 'running'),
     updated as (
       update taskgate.run_log l
          set lines = coalesce(c.lines, l.lines), bytes = c.bytes, dropped = c.dropped
         from checkpoint c
        where l.run_id = c.run_id and c.bytes >= l.bytes and c.dropped >= l.dropped)
     insert into taskgate.run_log (run_id, lines, bytes, dropped)
     select c.run_id, c.lines, c.bytes, c.dropped from checkpoint c
      where c.lines is not null
        and not exists (select from taskgate.run_log l where l.run_id = c.run_id)
     on conflict (run_id) do nothing`,
    [JSON.stringify(checkpoints.map(({ runId, log }) => ({ run_id: runId, ...log })))],
  );
}

/**
 * Asks a running run to stop: the request is a mark on its row, which the process running it
 * reads with its next lease renewal (src/core/leases.ts). The first request's who, when and why are
 * kept. Null when the run is not running (or not there): nothing is changed then.
 */
export async function requestCancel(
  db: SqlClient,
  id: string,
  request: { by: string; reason: string | null },
): Promise<RunRecord | null> {
  const { rows } = await db.query(
    `update taskgate.task_run
        set cancel_requested_at = coalesce(cancel_requested_at, clock_timestamp()),
            cancel_requested_by = coalesce(cancel_requested_by, $2),
            cancel_reason = case when cancel_requested_at is null then $3 else cancel_reason end
      where id = $1 and status = 'running'
      returning *`,
    [id, request.by, request.reason],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/**
 * What the run logged: as kept with its end, or for a run still going (or abandoned) as saved by
 * its last checkpoint; null when nothing was kept yet.
 */
export async function findRunLog(db: SqlClient, id: string): Promise<RunLogRecord | null> {
  if (!UUID.test(id)) return null;
  const { rows } = await db.query('select lines, bytes, dropped from taskgate.run_log where run_id = $1', [
    id,
  ]);
  const row = rows[0];
  if (!row) return null;
  return {
    lines: row.lines as Record<string, unknown>[],
    bytes: Number(row.bytes),
    dropped: Number(row.dropped),
  };
}

export async function findRun(db: SqlClient, id: string): Promise<RunRecord | null> {
  if (!UUID.test(id)) return null;
  const { rows } = await db.query('select * from taskgate.task_run where id = $1', [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** The latest attempt of an idempotency key. */
export async function findRunByIdempotencyKey(
  db: SqlClient,
  task: string,
  key: string,
): Promise<RunRecord | null> {
  const { rows } = await db.query(
    `select * from taskgate.task_run where task = $1 and idempotency_key = $2
      order by attempt desc limit 1`,
    [task, key],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function findRunningRun(db: SqlClient, task: string): Promise<RunRecord | null> {
  const { rows } = await db.query(
    `select * from taskgate.task_run where task = $1 and status = 'running'
      order by started_at desc limit 1`,
    [task],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** The most runs one list returns (`taskgate runs --limit`, `GET /cron/runs?limit=`). */
export const RUNS_LIMIT_MAX = 1_000;

/** The latest runs, newest first, of a task and a status when given: at most `limit` (1 to RUNS_LIMIT_MAX). */
export async function listRuns(
  db: SqlClient,
  filter: { task?: string; status?: RunStatus; limit: number },
): Promise<RunRecord[]> {
  checkLimit(filter.limit, RUNS_LIMIT_MAX);
  const { rows } = await db.query(
    `select * from taskgate.task_run
      where ($1::text is null or task = $1) and ($2::text is null or status = $2)
      order by started_at desc limit $3`,
    [filter.task ?? null, filter.status ?? null, filter.limit],
  );
  return rows.map(fromRow);
}

/**
 * The latest `perTask` runs of each of `tasks`, newest first: one index range scan per task
 * (task_run_task_started_at_idx), however long the history is.
 */
export async function recentRunsOf(
  db: SqlClient,
  tasks: readonly string[],
  perTask: number,
): Promise<Map<string, RunRecord[]>> {
  const { rows } = await db.query(
    `select r.* from unnest($1::text[]) as t(task)
       cross join lateral (
         select * from taskgate.task_run where task = t.task order by started_at desc limit $2) r`,
    [tasks, perTask],
  );
  const runs = new Map<string, RunRecord[]>(tasks.map((task) => [task, []]));
  for (const row of rows) runs.get(String(row.task))?.push(fromRow(row));
  return runs;
}

/** The latest run and the latest successful run of each task, for listings and overdue checks. */
export async function latestRuns(
  db: SqlClient,
): Promise<Map<string, { last: RunRecord | null; lastSuccess: RunRecord | null }>> {
  const { rows } = await db.query(
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

/**
 * When each task's first real (not dry) run started: the reference for a task that has never
 * succeeded, so that one failing since it was added still turns overdue.
 */
export async function firstRunStarts(db: SqlClient): Promise<Map<string, Date>> {
  const { rows } = await db.query(
    'select task, min(started_at) as started_at from taskgate.task_run where not dry_run group by task',
  );
  return new Map(rows.map((row) => [String(row.task), new Date(row.started_at as string)]));
}

/** How many finished runs started before `before`: what a prune would delete. */
export async function countRunsBefore(db: SqlClient, before: Date): Promise<number> {
  const { rows } = await db.query(
    `select count(*)::int as n from taskgate.task_run where started_at < $1 and status <> 'running'`,
    [before],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Deletes finished runs that started before `before`, at most `limit` of them. */
export async function deleteRunsBefore(db: SqlClient, before: Date, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `with doomed as (
       select id from taskgate.task_run
        where started_at < $1 and status <> 'running'
        order by started_at limit $2)
     delete from taskgate.task_run r using doomed where r.id = doomed.id`,
    [before, limit],
  );
  return rowCount ?? 0;
}
