import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { z } from 'zod';
import { Registry, validateTask } from '../src/core/registry.js';
import { findRun } from '../src/core/runs.js';
import { freePort, startEmbeddedDatabase } from '../src/db/embedded.js';
import { initORM, migrate } from '../src/db/orm.js';
import type { TaskgateError } from '../src/errors.js';
import { defineTask } from '../src/task.js';
import {
  createExecTable,
  eventually,
  executions,
  overlapping,
  type Replica,
  startReplica,
  trigger,
} from './support/coordination.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { adminQuery } from './support/global.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

async function busyOrError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'started';
  } catch (error) {
    return (error as TaskgateError).code ?? String(error);
  }
}

describe('run coordination on a real PostgreSQL', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  const open: { close(): Promise<void> }[] = [];
  const track = <T extends { close(): Promise<void> }>(thing: T): T => {
    open.push(thing);
    return thing;
  };

  beforeEach(async () => {
    db = await createTestDatabase();
    await createExecTable(db.url);
  });
  afterEach(async () => {
    for (const thing of open.splice(0).reverse()) await thing.close().catch(() => undefined);
    await db.drop();
  });

  it('never runs a task twice at once after every taskgate connection is terminated mid-run', async () => {
    const replica = track(await startReplica(db.url, { RUN_LEASE_MS: '3000' }));
    const first = await replica.runner.start({ task: 'exclusive', params: { ms: 2_500 }, trigger: 'cli' });
    await delay(500);
    const { rows } = await adminQuery(
      `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`,
      [db.name],
    );
    expect(rows.length, 'connections terminated').to.be.greaterThan(0);
    // A second replica, and the first one again: the lease is a row, untouched by the terminations.
    const other = track(await startReplica(db.url));
    expect(await busyOrError(other.runner.start({ task: 'exclusive', trigger: 'cli' }))).to.equal(
      'TASK_BUSY',
    );
    expect(await busyOrError(replica.runner.start({ task: 'exclusive', trigger: 'cli' }))).to.equal(
      'TASK_BUSY',
    );
    expect((await replica.runner.wait(first.run.id)).status).to.equal('succeeded');
    const second = await other.runner.run({ task: 'exclusive', params: { ms: 100 }, trigger: 'cli' });
    expect(second.status).to.equal('succeeded');
    const list = await executions(db.url);
    expect(list).to.have.length(2);
    expect(overlapping(list)).to.deep.equal([]);
  });

  it('keeps a run exclusive across a database restart, and records its end once the database is back', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-restart-'));
    const port = await freePort();
    const start = () =>
      startEmbeddedDatabase({ dataDir: path.join(dir, 'pg'), persistent: true, port, fast: true });
    let server = await start();
    track({ close: () => rm(dir, { recursive: true, force: true }) });
    track({ close: () => server.stop() });
    await server.createDatabase('restart');
    const url = server.urlFor('restart');
    const orm = await initORM(url);
    await migrate(orm);
    await orm.close(true);
    await createExecTable(url);

    const replica = track(await startReplica(url, { RUN_LEASE_MS: '10000' }));
    const first = await replica.runner.start({ task: 'exclusive', params: { ms: 4_000 }, trigger: 'cli' });
    await delay(800);
    await server.stop();
    expect(await busyOrError(replica.runner.start({ task: 'exclusive', trigger: 'cli' }))).to.equal(
      'DATABASE_UNAVAILABLE',
    );
    await delay(500);
    server = await start();
    const other = track(await startReplica(url));
    expect(await busyOrError(other.runner.start({ task: 'exclusive', trigger: 'cli' }))).to.equal(
      'TASK_BUSY',
    );
    const ended = await replica.runner.wait(first.run.id);
    expect(ended.status).to.equal('succeeded');
    expect((await findRun(other.db, first.run.id))?.status).to.equal('succeeded');
    expect(
      (await other.runner.run({ task: 'exclusive', params: { ms: 50 }, trigger: 'cli' })).status,
    ).to.equal('succeeded');
    const list = await executions(url);
    expect(list).to.have.length(2);
    expect(overlapping(list)).to.deep.equal([]);
  });

  it('keeps a 10 s run exclusive with idle_session_timeout 2 s and idle_in_transaction_session_timeout 1 s', async () => {
    await adminQuery(`alter database ${db.name} set idle_session_timeout = '2s'`);
    await adminQuery(`alter database ${db.name} set idle_in_transaction_session_timeout = '1s'`);
    const replica = track(await startReplica(db.url, { RUN_LEASE_MS: '3000' }));
    const other = track(await startReplica(db.url, { RUN_LEASE_MS: '3000' }));
    const first = await replica.runner.start({ task: 'exclusive', params: { ms: 10_000 }, trigger: 'cli' });
    const refusals: string[] = [];
    for (let second = 1; second <= 8; second++) {
      await delay(1_000);
      // The other replica also sweeps, as serve does: a live run's lease is never taken for expired.
      await other.runner.sweepAbandoned();
      refusals.push(await busyOrError(other.runner.start({ task: 'exclusive', trigger: 'cli' })));
    }
    expect((await replica.runner.wait(first.run.id)).status).to.equal('succeeded');
    expect(refusals.length).to.be.at.least(8);
    expect(
      refusals.filter((r) => r !== 'TASK_BUSY'),
      'every refusal while it ran',
    ).to.deep.equal([]);
    const list = await executions(db.url);
    expect(list).to.have.length(1);
    expect(list[0]!.endedAt!.getTime() - list[0]!.startedAt.getTime()).to.be.at.least(9_900);
  });

  it('runs twenty tasks triggered at the same moment, all on the default pool of ten', async () => {
    const tasks = Array.from({ length: 20 }, (_, i) =>
      validateTask(
        `many_${i}.ts`,
        defineTask({
          name: `many_${i}`,
          description: 'Sleeps a second between two statements.',
          schedule: '0 0 * * *',
          params: z.strictObject({}),
          async run({ db: sql }) {
            await sql.query('select 1');
            await delay(1_000);
            await sql.query('select 1');
            return { ok: true };
          },
        }),
      ),
    );
    const replica = track(await startReplica(db.url, {}, { registry: new Registry(tasks) }));
    expect(replica.db.options.max).to.equal(10);
    const answers = await Promise.all(tasks.map((t) => trigger(replica.base, t.definition.name)));
    expect(answers.map((a) => a.status)).to.deep.equal(tasks.map(() => 200));
  });

  it('makes one run of 200 concurrent requests with one Idempotency-Key over two replicas, replaying it to all others', async () => {
    const a = track(await startReplica(db.url));
    const b = track(await startReplica(db.url));
    const headers = { 'Idempotency-Key': 'nightly-2026-11-30' };
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        trigger(i % 2 ? a.base : b.base, 'exclusive', { ms: 1_500 }, headers),
      ),
    );
    const statuses = new Set(answers.map((r) => r.status));
    expect(
      [...statuses].every((s) => s === 200 || s === 202),
      `statuses ${[...statuses]}`,
    ).to.equal(true);
    const runIds = new Set(answers.map((r) => r.body.runId));
    expect(runIds.size).to.equal(1);
    expect(answers.filter((r) => r.headers.get('idempotent-replayed') === 'true')).to.have.length(199);
    const { rows } = await db.sql.query(
      `select count(*)::int as n from taskgate.task_run where task = 'exclusive'`,
    );
    expect(rows[0]!.n).to.equal(1);
    expect(await executions(db.url)).to.have.length(1);
  });

  it('starts a new attempt for a key whose run failed or was abandoned, and replays one that succeeded', async () => {
    const replica = track(await startReplica(db.url));
    const key = { 'Idempotency-Key': 'k-attempts' };
    await db.sql.query(
      `insert into taskgate.task_run (id, task, trigger, params, status, idempotency_key, started_at, finished_at, error)
       values (gen_random_uuid(), 'pause', 'http', '{"ms": 10}', 'abandoned', 'k-attempts', now(), now(), 'lost')`,
    );
    const second = await trigger(replica.base, 'pause', { ms: 10 }, key);
    expect(second.status).to.equal(200);
    expect(second.headers.get('idempotent-replayed')).to.equal(null);
    const run = await findRun(db.sql, String(second.body.runId));
    expect(run).to.include({ status: 'succeeded', attempt: 2, idempotencyKey: 'k-attempts' });
    const replay = await trigger(replica.base, 'pause', { ms: 10 }, key);
    expect(replay.headers.get('idempotent-replayed')).to.equal('true');
    expect(replay.body.runId).to.equal(second.body.runId);
    const reused = await trigger(replica.base, 'pause', { ms: 20 }, key);
    expect(reused.status).to.equal(422);
    expect(reused.body).to.include({ code: 'IDEMPOTENCY_KEY_REUSED', runId: second.body.runId });
  });

  it('fences a run that lost its lease: it is told, its last write is not sent, and it cannot write its end over the new owner', async () => {
    const replica = track(await startReplica(db.url, { RUN_LEASE_MS: '1500' }));
    const other = track(await startReplica(db.url, { RUN_LEASE_MS: '1500' }));
    const first = await replica.runner.start({ task: 'exclusive', params: { ms: 20_000 }, trigger: 'cli' });
    await eventually(async () => (await executions(db.url)).length === 1, 5_000);
    // As if the first replica had been cut off for longer than its lease: the lease expires.
    await db.sql.query(`update taskgate.task_lease set expires_at = now() - interval '1 second'`);
    const second = await other.runner.start({ task: 'exclusive', params: { ms: 1_000 }, trigger: 'cli' });
    // Told by its next renewal: its sleep ends on the signal, and the write it then tries is refused.
    const lost = await replica.runner.wait(first.run.id);
    expect(lost.status, 'the record as the new owner left it').to.equal('abandoned');
    expect(lost.error).to.equal(
      'the process running it was alive but lost its lease: the run was taken over or marked abandoned; it stopped the task',
    );
    expect((await other.runner.wait(second.run.id)).status).to.equal('succeeded');
    const list = await executions(db.url);
    expect(
      list.find((e) => e.runId === first.run.id)?.endedAt,
      'its end, written after the takeover',
    ).to.equal(null);
    expect(list.find((e) => e.runId === second.run.id)?.endedAt).to.be.instanceOf(Date);
  });

  describe('through a TCP path that freezes or is cut', () => {
    let proxy: TcpProxy;
    let replica: Replica;
    beforeEach(async () => {
      proxy = track(await startTcpProxy(db.url));
      replica = track(
        await startReplica(proxy.url, {
          DATABASE_QUERY_TIMEOUT_MS: '1500',
          DATABASE_CONNECT_TIMEOUT_MS: '1500',
          RUN_LEASE_MS: '10000',
        }),
      );
    });

    it('answers 503 DATABASE_UNAVAILABLE with Retry-After within the query time-out when the path freezes', async () => {
      expect((await fetch(`${replica.base}/readyz`)).status).to.equal(200);
      proxy.freeze();
      const answer = await trigger(replica.base, 'pause', { ms: 10 });
      expect(answer.status).to.equal(503);
      expect(answer.body).to.include({
        code: 'DATABASE_UNAVAILABLE',
        message: 'the database is not reachable right now; try again shortly',
      });
      expect(answer.headers.get('retry-after')).to.match(/^\d+$/);
      expect(answer.ms).to.be.below(1_500 + 1_000);
      const listing = await fetch(`${replica.base}/cron/runs`, {
        headers: { 'X-Cron-Secret': 'x'.repeat(40) },
      });
      expect(listing.status, 'a refused secret needs no database').to.equal(401);
      proxy.restore();
      expect((await trigger(replica.base, 'pause', { ms: 10 })).status).to.equal(200);
    });

    it('turns /readyz 503 when the path is cut and 200 again once it is restored, without a restart', async () => {
      expect((await fetch(`${replica.base}/readyz`)).status).to.equal(200);
      proxy.cut();
      const down = await fetch(`${replica.base}/readyz`);
      expect(down.status).to.equal(503);
      const body = await down.json();
      expect(body).to.deep.equal({
        status: 'error',
        code: 'DATABASE_UNAVAILABLE',
        message: 'the database is not available',
      });
      expect(down.headers.get('retry-after')).to.match(/^\d+$/);
      proxy.restore();
      await eventually(async () => (await fetch(`${replica.base}/readyz`)).status === 200, 5_000);
    });

    it('records the end of a run that ended while the database was cut off, once it is back', async () => {
      const { run } = await replica.runner.start({ task: 'pause', params: { ms: 300 }, trigger: 'cli' });
      proxy.cut();
      await delay(2_500);
      expect((await findRun(db.sql, run.id))?.status, 'while cut off').to.equal('running');
      proxy.restore();
      const ended = await replica.runner.wait(run.id);
      expect(ended.status).to.equal('succeeded');
      expect((await findRun(db.sql, run.id))?.status).to.equal('succeeded');
    });
  });

  it('gives a run whose process vanished to the next trigger within the lease, and marks it abandoned', async () => {
    // A replica whose lease renewals stop (as when its process is killed): its pool is gone.
    const doomed = await startReplica(db.url, { RUN_LEASE_MS: '1500' });
    const other = track(await startReplica(db.url, { RUN_LEASE_MS: '1500' }));
    const ghost = await doomed.runner.start({ task: 'pause', params: { ms: 60_000 }, trigger: 'cli' });
    await doomed.db.close();
    const started = Date.now();
    const next = await eventually(
      () =>
        other.runner
          .start({ task: 'pause', params: { ms: 10 }, trigger: 'cli' })
          .catch((error: TaskgateError) => (error.code === 'TASK_BUSY' ? null : Promise.reject(error))),
      10_000,
    );
    expect(Date.now() - started).to.be.below(1_500 + 1_000);
    expect((await other.runner.wait(next.run.id)).status).to.equal('succeeded');
    expect((await findRun(db.sql, ghost.run.id))?.status).to.equal('abandoned');
    await doomed.close().catch(() => undefined);
  });

  it('answers 503 with Retry-After within about 2 s when every pool connection is busy, never a 500 after a wait', async () => {
    const replica = track(await startReplica(db.url, { DATABASE_POOL_MAX: '2' }));
    // Both connections of the pool taken, as long statements would take them.
    const held = await Promise.all([replica.db.pool.connect(), replica.db.pool.connect()]);
    try {
      const answer = await trigger(replica.base, 'pause', { ms: 10 });
      expect(answer.status).to.equal(503);
      expect(answer.body).to.include({ code: 'DATABASE_UNAVAILABLE' });
      expect(answer.headers.get('retry-after')).to.match(/^\d+$/);
      expect(answer.ms).to.be.within(1_500, 3_000);
    } finally {
      for (const client of held) client.release();
    }
    expect((await trigger(replica.base, 'pause', { ms: 10 })).status).to.equal(200);
  });

  it('the pool of a quiet replica holds no connection while a run sleeps', async () => {
    const replica = track(await startReplica(db.url));
    const { run } = await replica.runner.start({ task: 'pause', params: { ms: 1_000 }, trigger: 'cli' });
    await delay(300);
    expect(replica.db.pool.totalCount - replica.db.pool.idleCount, 'connections in use').to.equal(0);
    await replica.runner.wait(run.id);
  });
});
