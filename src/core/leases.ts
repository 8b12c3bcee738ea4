import type { SqlClient } from '../db/sql.js';

/**
 * Task leases: what makes runs of one task exclusive across every process sharing the database.
 *
 * A lease is a row in `taskgate.task_lease` naming the run that holds the task and when the
 * lease expires. It is taken with one conditional upsert (free, or expired), renewed by the
 * holder's heartbeat, and given back with the run's end (src/core/runs.ts, finishRun). Why a row and
 * not an advisory lock: a session lock lives on a server connection, which a transaction pooler
 * (PgBouncer, Neon's and Supabase's pooled URLs) shares between clients and which
 * pg_terminate_backend, a restart or idle_session_timeout can take away unnoticed; a row needs no
 * connection held, survives all of that, and expires by itself when its holder dies.
 * Every time is the database's clock, so hosts with skewed clocks still agree.
 */

/** Takes the task's lease for `runId` when it is free or expired; false when another run holds it. */
export async function takeLease(
  tx: SqlClient,
  lease: { task: string; runId: string; holder: string; ttlMs: number },
): Promise<boolean> {
  const { rows } = await tx.query(
    `insert into taskgate.task_lease as l (task, run_id, holder, expires_at)
     values ($1, $2, $3, clock_timestamp() + $4 * interval '1 millisecond')
     on conflict (task) do update
        set run_id = excluded.run_id, holder = excluded.holder,
            acquired_at = clock_timestamp(), expires_at = excluded.expires_at
      where l.expires_at <= clock_timestamp()
     returning run_id`,
    [lease.task, lease.runId, lease.holder, lease.ttlMs],
  );
  return rows.length === 1;
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

/** Gives a lease back without recording an end (the run could not be recorded at all). */
export async function releaseLease(db: SqlClient, runId: string): Promise<void> {
  await db.query('delete from taskgate.task_lease where run_id = $1', [runId]);
}
