import type { Db, DbHandle } from '../db/sql.js';
import type { LeaseKeeper } from './leaseKeeper.js';
import { leaseProofSql } from './leases.js';

/**
 * The SQL handle a run's task gets as `ctx.db`, made here and nowhere else: fenced by the run's
 * lease (docs/design/leases.md). Every use is a transaction, a single statement too, that
 * - is not sent at all once the lease is not known to hold by the monotonic clock
 *   (LeaseKeeper.remainingMs, read at the moment of sending),
 * - proves the lease in BEGIN's round trip, locking the lease row FOR KEY SHARE, so that no
 *   takeover can happen while it is open, and one that happened before makes it fail,
 * - is bounded by PostgreSQL itself (statement_timeout, idle_in_transaction_session_timeout) to
 *   what is left of its deadline and of the lease, so that a frozen process holds its locks no
 *   longer than that.
 * When the lease is lost, the run's statements in flight are cancelled and its connections
 * closed (`cancel`, called by src/core/runExecution.ts).
 */

/** What a run's SQL fails with once its lease is lost: nothing more was sent. */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
}

export function runSql(
  db: Db,
  run: { task: string; runId: string; timeoutMs: number },
  keeper: LeaseKeeper,
  options: { fenced: boolean },
): DbHandle {
  if (!options.fenced) return db.handle({ timeoutMs: run.timeoutMs });
  return db.handle({
    timeoutMs: run.timeoutMs,
    fence: {
      remainingMs: () => keeper.remainingMs(run.runId),
      proof: leaseProofSql(run.task, run.runId),
      lost: () =>
        new LeaseLost(`run ${run.runId} no longer holds the lease of ${run.task}: its SQL is not sent`),
      name: "the run's lease (RUN_LEASE_MS less two renewal periods: raise RUN_LEASE_MS for longer statements)",
    },
  });
}
