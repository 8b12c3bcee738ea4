import { expect } from 'chai';
import { CANCEL_POLL_MS } from '../src/core/leaseKeeper.js';
import { loadRegistry, type Registry } from '../src/core/registry.js';
import { findRun } from '../src/core/runs.js';
import { eventually, type Replica, startReplica, trigger } from './support/coordination.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { type PgBouncer, requirePgBouncer, startPgBouncer } from './support/pgbouncer.js';
import { TEST_SECRET } from './support/runner.js';

const TASK = 'flushexpiredtokens_daily';
const TOKENS = 250_000;
/** Seeding and counting a quarter of a million rows takes seconds on a busy machine: more than a query's usual deadline. */
const SEED_TIMEOUT = { timeoutMs: 60_000 };

/** POST to a control route of a replica with the test secret. */
async function control(base: string, path: string, body: Record<string, unknown> = {}) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'X-Cron-Secret': TEST_SECRET, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('cancelling a run on another replica, through PgBouncer in transaction mode', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let bouncer: PgBouncer;
  let registry: Registry;
  let running: Replica;
  let other: Replica;
  const remaining = async () =>
    Number(
      (
        await db.sql.query(
          'select count(*)::int as n from token_blacklist_outstandingtoken',
          undefined,
          SEED_TIMEOUT,
        )
      ).rows[0]!.n,
    );

  before(async function () {
    requirePgBouncer(this, 'cancelling through PgBouncer');
    db = await createTestDatabase();
    bouncer = await startPgBouncer({ targetUrl: db.url, poolMode: 'transaction' });
    registry = await loadRegistry();
    // The default lease (30 s): the cancel bound is the renewal period, CANCEL_POLL_MS, not a third of it.
    running = await startReplica(bouncer.url, {}, { registry });
    other = await startReplica(bouncer.url, {}, { registry });
  });
  after(async () => {
    await running?.close();
    await other?.close();
    await bouncer?.stop();
    await db?.drop();
  });

  it('stops a flush between batches within one renewal period, records it cancelled with its counts, and a rerun finishes it', async () => {
    await db.sql.query(
      `insert into token_blacklist_outstandingtoken (token, created_at, expires_at, user_id, jti)
       select 'header.payload.' || g, now(), now() - interval '1 day', null, 'jti-' || g
         from generate_series(1, ${TOKENS}) g`,
      undefined,
      SEED_TIMEOUT,
    );
    await db.sql.query(
      `insert into token_blacklist_blacklistedtoken (blacklisted_at, token_id)
       select now(), id from token_blacklist_outstandingtoken where id % 10 = 0`,
    );

    // Small fixed batches: the flush is still running when the cancel reaches it.
    const started = await trigger(
      running.base,
      TASK,
      { batchSize: 100, batchTargetMs: 0 },
      { Prefer: 'respond-async' },
    );
    expect(started.status, JSON.stringify(started.body)).to.equal(202);
    const runId = String(started.body.runId);
    // Well into it: some batches committed, most of the work left.
    await eventually(async () => (await remaining()) < TOKENS - 5_000, 30_000);
    expect(running.runner.activeCount).to.equal(1);
    expect(other.runner.activeCount).to.equal(0);

    const asked = performance.now();
    const cancel = await control(other.base, `/cron/runs/${runId}/cancel`, {
      reason: 'flush during the sale',
    });
    expect(cancel.status, JSON.stringify(cancel.body)).to.equal(202);
    const ended = await eventually(async () => {
      const run = await findRun(db.sql, runId);
      return run && run.status !== 'running' ? run : null;
    }, 30_000);
    const tookMs = performance.now() - asked;
    process.stderr.write(`      cancel on the other replica took effect in ${Math.round(tookMs)} ms\n`);
    // One renewal period, plus the batch in flight and the polling of this test.
    expect(tookMs).to.be.below(CANCEL_POLL_MS + 1_000);

    expect(ended.status).to.equal('cancelled');
    expect(ended.error).to.equal('cancelled by http: flush during the sale');
    expect(ended.cancel).to.include({ by: 'http', reason: 'flush during the sale' });
    const counts = ended.result as { complete: boolean; deletedOutstanding: number; batches: number };
    expect(counts.complete).to.equal(false);
    expect(counts.batches).to.be.greaterThan(0);
    expect(counts.deletedOutstanding).to.be.greaterThan(0);
    const left = await remaining();
    expect(left).to.equal(TOKENS - counts.deletedOutstanding);
    expect(left).to.be.greaterThan(0);

    // The rerun, asked of the other replica, runs there with the same params and finishes the job.
    const rerun = await control(other.base, `/cron/runs/${runId}/rerun`, { reason: 'after the sale' });
    expect([200, 202]).to.include(rerun.status);
    const rerunId = String(rerun.body.runId);
    const finished = await other.runner.wait(rerunId);
    expect(finished).to.include({ status: 'succeeded', rerunOf: runId, rerunReason: 'after the sale' });
    process.stderr.write(`      the rerun took ${finished.durationMs} ms\n`);
    expect(finished.params).to.deep.equal({ batchSize: 100, batchTargetMs: 0 });
    expect((finished.result as { complete: boolean }).complete).to.equal(true);
    expect(await remaining()).to.equal(0);
    const orphans = await db.sql.query(
      `select count(*)::int as n from token_blacklist_blacklistedtoken b
        where not exists (select from token_blacklist_outstandingtoken o where o.id = b.token_id)`,
    );
    expect(orphans.rows[0]!.n).to.equal(0);
  });
});
