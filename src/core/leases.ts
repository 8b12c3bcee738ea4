import pg from 'pg';
import type { SqlClient } from '../db/sql.js';

/**
 * Task leases: what makes runs of one task exclusive across every process sharing the database.
 * All of their SQL is here; why it is shaped so is docs/design/leases.md.
 *
 * A lease is a row in `taskgate.task_lease` naming the run that holds the task and when the
 * lease expires. It is taken in the transaction that records the run (free, or expired and not
 * in use), renewed by the holder's heartbeat, and given back with the run's end
 * (src/core/runs.ts, finishRun). Every time is the database's clock, so hosts with skewed clocks
 * still agree.
 *
 * Fencing: every transaction of a run's task starts by proving the lease (leaseProofSql), which
 * locks the lease row FOR KEY SHARE until the transaction ends. The owner's renewal (an UPDATE of
 * a column outside any key: FOR NO KEY UPDATE) does not conflict with it, so a long transaction
 * never starves the lease; a takeover locks the row FOR UPDATE, which does, so it can never
 * happen while a transaction of the old run is open, and a transaction begun after it finds the
 * lease gone. FOR SHARE would fence as well, but would block the renewal.
 */

/**
 * Takes the task's lease for `runId` when there is none, or when it has expired and no
 * transaction of its run is open; false when another run holds it.
 */
export async function takeLease(
  tx: SqlClient,
  lease: { task: string; runId: string; holder: string; ttlMs: number },
): Promise<boolean> {
  const values = [lease.task, lease.runId, lease.holder, lease.ttlMs];
  const inserted = await tx.query(
    `insert into taskgate.task_lease (task, run_id, holder, expires_at)
     values ($1, $2, $3, clock_timestamp() + $4 * interval '1 millisecond')
     on conflict (task) do nothing
     returning run_id`,
    values,
  );
  if (inserted.rows.length === 1) return true;
  // FOR UPDATE conflicts with the FOR KEY SHARE of the old run's open transactions (an UPDATE of
  // these columns alone would not), and SKIP LOCKED makes the task busy meanwhile instead of
  // waiting: that transaction ends by its own deadline, which its lease bounds.
  const taken = await tx.query(
    `with expired as (
       select task from taskgate.task_lease
        where task = $1 and expires_at <= clock_timestamp()
          for update skip locked)
     update taskgate.task_lease l
        set run_id = $2, holder = $3, acquired_at = clock_timestamp(),
            expires_at = clock_timestamp() + $4 * interval '1 millisecond'
       from expired
      where l.task = expired.task
      returning l.run_id`,
    values,
  );
  return taken.rows.length === 1;
}

/**
 * The statement that proves a run's lease inside one of its transactions (sent with BEGIN): one
 * row while the run holds an unexpired lease, locked FOR KEY SHARE until the transaction ends.
 * Literals, not parameters, so that it travels in BEGIN's round trip (the simple protocol).
 */
export function leaseProofSql(task: string, runId: string): string {
  return `select 1 from taskgate.task_lease
 where task = ${pg.escapeLiteral(task)} and run_id = ${pg.escapeLiteral(runId)}::uuid
   and expires_at > clock_timestamp()
   for key share`;
}

/** A renewed lease, and the cancel request on its run when an operator asked it to stop. */
export interface Renewal {
  cancel: { by: string; reason: string | null } | null;
}

/**
 * Extends the leases of the runs given, in one statement for all of this process's runs. A
 * lease is renewed only while its run is still `running`: a run marked abandoned while its
 * process was cut off does not get its lease back. Returns the runs renewed, each with the
 * cancel request on it, if any: that is how a cancel asked of any replica (or the CLI) reaches
 * the process running the run, with statements a transaction pooler passes. A run missing from
 * the answer has lost its lease.
 */
export async function renewLeases(
  db: SqlClient,
  runIds: string[],
  ttlMs: number,
): Promise<Map<string, Renewal>> {
  const { rows } = await db.query(
    `update taskgate.task_lease l
        set expires_at = clock_timestamp() + $2 * interval '1 millisecond'
       from taskgate.task_run r
      where l.run_id = any($1::uuid[]) and r.id = l.run_id and r.status = 'running'
      returning l.run_id, r.cancel_requested_at is not null as cancel, r.cancel_requested_by, r.cancel_reason`,
    [runIds, ttlMs],
  );
  return new Map(
    rows.map((r) => [
      String(r.run_id),
      {
        cancel: r.cancel
          ? { by: String(r.cancel_requested_by), reason: (r.cancel_reason ?? null) as string | null }
          : null,
      },
    ]),
  );
}
