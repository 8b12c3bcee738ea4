import type { Db, SqlClient } from '../db/sql.js';
import { takeLease } from './leases.js';
import { activePause, pausedError } from './pauses.js';
import { checkSameRequest } from './runRequest.js';
import {
  abandonRunsOf,
  findRunByIdempotencyKey,
  findRunningRun,
  insertRun,
  type NewRun,
  type RunRecord,
} from './runs.js';
import type { Schedule } from './schedule.js';
import { answerRanSlot, countDuplicateFire, databaseNow, slotAt, slotKey } from './slots.js';

// Claiming a run: in one transaction, an idempotency key's earlier run is replayed, a pause
// refuses it, the task's lease is taken (src/core/leases.ts), runs of a dead owner are marked
// abandoned and the run is recorded.

/** What the claim decided: a replay, a busy task, or a run started. */
export type Claim =
  | { replay: RunRecord }
  | { busyRunId: string | null }
  | { run: RunRecord; abandoned: string[] };

/**
 * A scheduled fire: its run is its slot's (src/core/slots.ts), decided here on the database clock
 * unless the caller names it (catch-up does).
 */
export interface ScheduledFire {
  schedule: Schedule;
  slot?: Date;
}

/** Thrown inside the claim's transaction to roll the lease back when the key's run exists after all. */
class KeyTaken extends Error {}

/**
 * Claims `run` (params already validated) for `holder`, the lease lasting `ttlMs`. A pause is
 * thrown as TASK_PAUSED and a key reused for another request as IDEMPOTENCY_KEY_REUSED; a busy
 * task and a replay are answers, for the caller to turn into its error or its reply.
 */
export async function claimRun(
  db: Db,
  claim: { run: NewRun; holder: string; ttlMs: number; scheduled?: ScheduledFire },
): Promise<Claim> {
  const { holder, ttlMs, scheduled } = claim;
  let asked = claim.run;
  const name = asked.task;
  let key = asked.idempotencyKey;
  const { params, dryRun } = asked;
  if (scheduled) {
    // Most fires of a slot come after its run succeeded: answered without the claim's transaction.
    const ran = await answerRanSlot(db, name, scheduled);
    if (ran) return { replay: ran };
  }
  const claimed = await db
    .transaction<Claim>(async (tx) => {
      if (scheduled) {
        // The slot is decided on the database clock, inside the claim: every replica agrees.
        const slot = scheduled.slot ?? slotAt(scheduled.schedule, await databaseNow(tx));
        if (slot) {
          key = slotKey(slot);
          asked = { ...asked, slot, idempotencyKey: key };
        }
      }
      if (key) {
        const earlier = await findRunByIdempotencyKey(tx, name, key);
        // A slot is one run whatever each fire carries; another request's key must be the same request.
        if (earlier && !asked.slot) checkSameRequest(earlier, params, dryRun);
        if (earlier?.status === 'succeeded') return replayed(tx, earlier, Boolean(asked.slot));
      }
      // Checked here, in the one place every run starts, so HTTP, the CLI and the scheduler all see it.
      const pause = await activePause(tx, name);
      if (pause) throw pausedError(pause);
      const leased = await takeLease(tx, { task: name, runId: asked.id, holder, ttlMs });
      if (!leased) {
        const busy = await whyBusy(tx, name, key);
        return 'replay' in busy ? replayed(tx, busy.replay, Boolean(asked.slot)) : busy;
      }
      const abandoned = await abandonRunsOf(tx, name);
      const run = await insertRun(tx, asked);
      // The key's run succeeded between the look-up and the lease: roll the lease back, replay it.
      if (!run) throw new KeyTaken();
      return { run, abandoned };
    })
    .catch(async (error) => {
      if (!(error instanceof KeyTaken)) throw error;
      const replay = await findRunByIdempotencyKey(db, name, key!);
      if (!replay) throw error;
      if (asked.slot) await db.transaction((tx) => countDuplicateFire(tx, replay.id));
      return { replay };
    });
  return claimed;
}

/**
 * The key's earlier run, as the answer; a slot fired again is counted too, in the claim's own
 * transaction (its count need not wait for the disk: src/core/slots.ts).
 */
async function replayed(tx: SqlClient, run: RunRecord, slot: boolean): Promise<Claim> {
  if (slot) await countDuplicateFire(tx, run.id);
  return { replay: run };
}

/** Inside the claim's transaction, once the lease was refused: a replay of the key's run, or who is busy. */
async function whyBusy(tx: SqlClient, task: string, key: string | null): Promise<Claim> {
  if (key) {
    const earlier = await findRunByIdempotencyKey(tx, task, key);
    if (earlier && (earlier.status === 'running' || earlier.status === 'succeeded'))
      return { replay: earlier };
  }
  const running = await findRunningRun(tx, task);
  return { busyRunId: running?.id ?? null };
}
