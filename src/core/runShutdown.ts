import { setTimeout as delay } from 'node:timers/promises';
import type { Db } from '../db/sql.js';
import type { Logger } from '../logger.js';
import type { LeaseKeeper } from './leaseKeeper.js';
import { recordUnstopped } from './runEnd.js';
import type { Inflight } from './runExecution.js';

// Stopping the runs of a process that shuts down, in bounded steps whatever the tasks do.

/** After the grace period and the abort, how long tasks get to stop before their SQL is cancelled. */
const ABORT_SETTLE_MS = 2_000;
/** After cancelling their SQL, how long before runs that still have not stopped are recorded interrupted. */
const CANCEL_SETTLE_MS = 1_000;

/**
 * Lets the runs in `inflight` finish for up to `graceMs`, then aborts them; ABORT_SETTLE_MS later
 * their SQL in flight is cancelled, and CANCEL_SETTLE_MS after that runs that still have not
 * stopped are recorded interrupted (or cancelled) here.
 */
export async function stopRuns(
  inflight: Map<string, Inflight>,
  deps: { db: Db; logger: Logger; keeper: LeaseKeeper },
  graceMs: number,
): Promise<void> {
  const { db, logger, keeper } = deps;
  if (inflight.size === 0) return;
  await settled(inflight, graceMs);
  if (inflight.size > 0) {
    logger.warn({ runIds: [...inflight.keys()] }, 'grace period over: interrupting runs');
    for (const run of inflight.values()) run.abort.abort(new Error('interrupted by shutdown'));
    await settled(inflight, ABORT_SETTLE_MS);
  }
  if (inflight.size > 0) {
    logger.warn({ runIds: [...inflight.keys()] }, 'runs did not stop when asked: cancelling their SQL');
    await db.cancelAll();
    await settled(inflight, CANCEL_SETTLE_MS);
  }
  for (const entry of [...inflight.values()]) {
    if (entry.ended) continue;
    entry.ended = true;
    keeper.drop(entry.run.id);
    await recordUnstopped(db, entry, logger);
  }
}

/** Resolves once every run in flight has settled, or `ms` have passed. */
async function settled(inflight: Map<string, Inflight>, ms: number): Promise<void> {
  const stop = new AbortController();
  await Promise.race([
    Promise.allSettled([...inflight.values()].map((run) => run.done)),
    delay(ms, undefined, { signal: stop.signal }).catch(() => undefined),
  ]);
  stop.abort();
}
