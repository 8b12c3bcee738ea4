import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import pg from 'pg';
import { LeaseKeeper } from '../src/core/leaseKeeper.js';
import { leaseProofSql, renewLeases, takeLease } from '../src/core/leases.js';
import { LeaseLost, runSql } from '../src/core/runSql.js';
import { insertRun } from '../src/core/runs.js';
import type { Fence } from '../src/db/sql.js';
import { createLogger } from '../src/logger.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventually } from './support/eventually.js';

/**
 * The lease row's locks, on a real PostgreSQL (docs/design/leases.md): a run's transactions hold
 * FOR KEY SHARE on it, the owner's renewal (FOR NO KEY UPDATE) passes beside them, and a takeover
 * (FOR UPDATE) does not happen while one is open.
 */
describe('leases and fencing on a real PostgreSQL', () => {
  let db: TestDatabase;
  const task = 'fenced_task';
  const lost = new Error('the fence no longer holds');
  const fenceOf = (runId: string, remainingMs = 60_000): Fence => ({
    remainingMs: () => remainingMs,
    proof: leaseProofSql(task, runId),
    lost: () => lost,
    name: 'the test fence',
  });
  /** Claims the task for a new run as the runner does: its lease and its record, in one transaction. */
  const take = (runId: string) =>
    db.sql.transaction(async (tx) => {
      const taken = await takeLease(tx, { task, runId, holder: `test:${runId}`, ttlMs: 60_000 });
      if (taken) {
        await insertRun(tx, {
          id: runId,
          task,
          trigger: 'test',
          params: {},
          dryRun: false,
          idempotencyKey: null,
        });
      }
      return taken;
    });
  const expire = () =>
    db.sql.query(`update taskgate.task_lease set expires_at = clock_timestamp() - interval '1 second'`);
  const rows = async (runId: string) =>
    Number(
      (await db.sql.query('select count(*)::int as n from fence_rows where run_id = $1', [runId])).rows[0]!.n,
    );
  const insert = 'insert into fence_rows (run_id) values ($1)';

  /** A fenced transaction kept open until `release` is called. */
  function openTransaction(runId: string) {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let opened!: () => void;
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const done = db.sql.handle({ fence: fenceOf(runId) }).transaction(async (tx) => {
      await tx.query(insert, [runId]);
      opened();
      await held;
      await tx.query(insert, [runId]);
    });
    return { open, release, done };
  }

  beforeEach(async () => {
    db = await createTestDatabase();
    await db.sql.query(
      'create table fence_rows (run_id uuid not null, at timestamptz default clock_timestamp())',
    );
  });
  afterEach(async () => db.drop());

  it('takes no expired lease while a transaction of its run is open: the task is busy until it ends, then taken', async () => {
    const old = randomUUID();
    expect(await take(old)).to.equal(true);
    const open = openTransaction(old);
    try {
      await open.open;
      // As if the old run's process had stopped renewing: its lease is expired, its transaction open.
      await expire();
      expect(await take(randomUUID()), 'while the transaction is open').to.equal(false);
    } finally {
      open.release();
      await open.done;
    }
    expect(await rows(old), 'the open transaction committed whole').to.equal(2);
    const next = randomUUID();
    expect(await take(next), 'once it ended').to.equal(true);
    // The old run's next transaction finds the lease gone: none of it runs.
    const refused = await db.sql
      .handle({ fence: fenceOf(old) })
      .query(insert, [old])
      .catch((error: Error) => error);
    expect(refused).to.equal(lost);
    expect(await rows(old)).to.equal(2);
  });

  it("renews the owner's lease while one of its transactions holds the proof (FOR KEY SHARE never blocks FOR NO KEY UPDATE)", async () => {
    const runId = randomUUID();
    await take(runId);
    const open = openTransaction(runId);
    try {
      await open.open;
      // Blocked, it would run into its one-second deadline while the transaction waits for it.
      const renewed = await renewLeases(db.sql.handle({ timeoutMs: 1_000 }), [runId], 60_000);
      expect([...renewed.keys()]).to.deep.equal([runId]);
    } finally {
      open.release();
      await open.done;
    }
  });

  it('fences a single statement too: no takeover while it runs', async () => {
    const old = randomUUID();
    await take(old);
    const sleeping = db.sql.handle({ fence: fenceOf(old) }).query('select pg_sleep(1.5) /* fenced-single */');
    await eventually(async () => {
      const { rows: active } = await db.sql.query(
        `select 1 from pg_stat_activity where state = 'active' and query like '%fenced-single%' and pid <> pg_backend_pid()`,
      );
      return active.length === 1;
    }, 5_000);
    await expire();
    expect(await take(randomUUID()), 'while the statement runs').to.equal(false);
    await sleeping;
    expect(await take(randomUUID()), 'once it ended').to.equal(true);
  });

  it('sends nothing once the fence is not known to hold, not even BEGIN', async () => {
    const runId = randomUUID();
    await take(runId);
    // A proof that would fail loudly if it reached the server.
    const fence: Fence = { remainingMs: () => 0, proof: 'select 1/0', lost: () => lost, name: 'a fence' };
    const refused = await db.sql
      .handle({ fence })
      .query(insert, [runId])
      .catch((error: Error) => error);
    expect(refused).to.equal(lost);
    expect(await rows(runId)).to.equal(0);
  });

  it("refuses a run's statement unsent once its lease is past its time by the monotonic clock, before any timer has said so", async () => {
    const runId = randomUUID();
    // Valid on the database: only the local check can refuse it.
    await take(runId);
    const keeper = new LeaseKeeper(db.sql, 3_000, createLogger({ level: 'silent', pretty: false }));
    let lostBecause: string | null = null;
    try {
      // As a process resumed after a pause: its last renewal was sent 10 s ago, and no timer of the
      // keeper has fired since, when the task's waiting query result arrives and it sends the next.
      keeper.hold(runId, { since: performance.now() - 10_000, onLost: (reason) => (lostBecause = reason) });
      const sql = runSql(db.sql, { task, runId, timeoutMs: 5_000 }, keeper, { fenced: true });
      const refused = await sql.query(insert, [runId]).catch((error: Error) => error);
      expect(refused).to.be.instanceOf(LeaseLost);
      expect(lostBecause).to.match(
        /^lost its lease: it could not be renewed for \d+ ms \(RUN_LEASE_MS is 3000\)/,
      );
      expect(await rows(runId)).to.equal(0);
    } finally {
      keeper.stop();
    }
  });

  it('bounds a transaction on the server to what is left of its deadline and of its fence', async () => {
    const runId = randomUUID();
    await take(runId);
    const settings = await db.sql
      .handle({ timeoutMs: 60_000, fence: fenceOf(runId, 3_000) })
      .transaction(async (tx) => {
        const { rows: found } = await tx.query(
          `select current_setting('statement_timeout') as statement,
                current_setting('idle_in_transaction_session_timeout') as idle`,
        );
        return found[0]!;
      });
    expect(settings.statement).to.match(/^(2|3)s$|^\d+ms$/);
    expect(settings.idle).to.equal(settings.statement);
    expect(Number.parseInt(String(settings.idle), 10)).to.be.at.most(3_000);
  });

  it('says that a statement outlasted the time left of its fence when the server cancels it for that', async () => {
    const runId = randomUUID();
    await take(runId);
    const error = (await db.sql
      .handle({ timeoutMs: 60_000, fence: fenceOf(runId, 500) })
      .query('select pg_sleep(5)')
      .catch((e: Error) => e)) as Error & { code?: string };
    expect(error.code).to.equal('57014');
    expect(error.message).to.match(
      /^canceling statement due to statement timeout: the transaction outlasted the \d+ ms left of the test fence when it began$/,
    );
  });

  it("ends on the server a transaction whose client stopped sending, releasing its locks to the application's waits", async () => {
    const runId = randomUUID();
    await take(runId);
    await db.sql.query('create table fence_users (id int primary key)');
    await db.sql.query('insert into fence_users values (1)');
    let resume!: () => void;
    const frozen = new Promise<void>((resolve) => {
      resume = resolve;
    });
    let locked!: () => void;
    const lockHeld = new Promise<void>((resolve) => {
      locked = resolve;
    });
    // As a client frozen mid-transaction: it holds the row lock and sends nothing more until resumed.
    const stalled = db.sql
      .handle({ fence: fenceOf(runId, 1_500) })
      .transaction(async (tx) => {
        await tx.query('update fence_users set id = id where id = 1');
        locked();
        await frozen;
        await tx.query(insert, [runId]);
      })
      .catch((error: Error) => error);
    await lockHeld;
    const app = new pg.Client({ connectionString: db.url });
    await app.connect();
    try {
      // The application's DELETE waits for the row lock, and gets it while the client is still frozen.
      const deleted = await app.query('delete from fence_users where id = 1');
      expect(deleted.rowCount).to.equal(1);
    } finally {
      await app.end();
    }
    resume();
    const error = (await stalled) as { code?: string };
    expect(error.code, 'the server ended the transaction').to.equal('DATABASE_UNAVAILABLE');
    expect(await rows(runId)).to.equal(0);
  });
});
