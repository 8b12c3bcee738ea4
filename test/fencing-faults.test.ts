import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import pg from 'pg';
import { z } from 'zod';
import { loadRegistry, Registry, validateTask } from '../src/core/registry.js';
import { findRun } from '../src/core/runs.js';
import type { TaskgateError } from '../src/errors.js';
import { defineTask } from '../src/task.js';
import { type Served, startServe } from './support/cli.js';
import { eventually, type Replica, startReplica, trigger } from './support/coordination.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { adminQuery } from './support/global.js';
import { type PgBouncer, requirePgBouncer, startPgBouncer } from './support/pgbouncer.js';
import { TEST_SECRET } from './support/runner.js';
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.js';

const FENCING_TASKS = fileURLToPath(new URL('./fixtures/tasks-fencing/', import.meta.url));

/**
 * Fencing against real faults (docs/design/leases.md): a replica paused with SIGSTOP and a network
 * path frozen one way, during a run through a real PgBouncer in transaction mode; a run whose
 * lease is lost while it sleeps in SQL; a pool of two held by long statements; a database out of
 * reach for longer than a lease. What ran when is read from the rows the task stamps itself with
 * `clock_timestamp()`, against the moment the lease changed hands, recorded by the database.
 */
describe('fencing a run that loses its lease, against real faults', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  let registry: Registry;
  const open: { close(): Promise<void> }[] = [];
  const track = <T extends { close(): Promise<void> }>(thing: T): T => {
    open.push(thing);
    return thing;
  };

  /** Resolves once `count` statements carrying `marker` are running in the test's database. */
  const running = (marker: string, count = 1) =>
    eventually(async () => {
      const { rows } = await adminQuery(
        `select pid, query_start from pg_stat_activity
          where datname = $1 and state = 'active' and query like $2 and pid <> pg_backend_pid()`,
        [db.name, `%${marker}%`],
      );
      return rows.length >= count ? (rows as { pid: number; query_start: Date }[]) : null;
    }, 20_000);

  /** The writer's rows of one run: how many, and the last one's time on the database clock. */
  const written = async (runId: string) => {
    const { rows } = await db.sql.query(
      'select count(*)::int as n, max(at) as last from fence_log where run_id = $1',
      [runId],
    );
    return { count: Number(rows[0]!.n), last: rows[0]!.last as Date | null };
  };

  /** The application deleting the row the writer's transaction holds locked. */
  const applicationDelete = async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      return (await client.query('delete from fence_target where id = 1')).rowCount;
    } finally {
      await client.end();
    }
  };

  /** Takes the writer over on `taker` as soon as the task is free, and the moment the database recorded it. */
  const takeOver = async (taker: Replica) => {
    const { run } = await eventually(
      () =>
        taker.runner
          .start({ task: 'writer', params: { ms: 1_000 }, trigger: 'cli' })
          .catch((error: TaskgateError) => (error.code === 'TASK_BUSY' ? null : Promise.reject(error))),
      30_000,
    );
    const { rows } = await db.sql.query('select acquired_at from taskgate.task_lease where run_id = $1', [
      run.id,
    ]);
    expect(rows, 'the new lease, while its run runs').to.have.length(1);
    return { run, at: rows[0]!.acquired_at as Date };
  };

  /** The reason the lost run's own process wrote over the one it was abandoned with. */
  const explained = (runId: string) =>
    eventually(async () => {
      const run = await findRun(db.sql, runId);
      return run?.error?.startsWith('the process running it was alive') ? run : null;
    }, 30_000);

  before(async () => {
    registry = await loadRegistry(FENCING_TASKS);
  });
  beforeEach(async () => {
    db = await createTestDatabase();
    await db.sql.query(`create table fence_log (run_id uuid not null, at timestamptz not null, via text not null);
      create table fence_target (id int primary key, touched_at timestamptz);
      insert into fence_target values (1, null)`);
  });
  afterEach(async () => {
    for (const thing of open.splice(0).reverse()) await thing.close().catch(() => undefined);
    await db.drop();
  });

  describe('through PgBouncer in transaction mode', () => {
    let bouncer: PgBouncer;
    beforeEach(async function () {
      requirePgBouncer(this, 'fencing through PgBouncer');
      bouncer = await startPgBouncer({ targetUrl: db.url, poolMode: 'transaction' });
      track({ close: () => bouncer.stop() });
    });

    it('a replica paused with SIGSTOP mid-transaction sends no statement after its lease is taken over, and its row locks are freed while it is paused', async () => {
      const paused: Served = await startServe({
        DATABASE_URL: bouncer.url,
        CRON_SECRET_KEY: TEST_SECRET,
        TASKS_DIR: FENCING_TASKS,
        RUN_LEASE_MS: '3000',
      });
      track({
        close: async () => {
          paused.child.kill('SIGCONT');
          paused.child.kill('SIGKILL');
          await paused.exited;
        },
      });
      const taker = track(await startReplica(bouncer.url, { RUN_LEASE_MS: '3000' }, { registry }));
      const started = await trigger(paused.base, 'writer', { ms: 60_000 }, { Prefer: 'respond-async' });
      expect(started.status, JSON.stringify(started.body)).to.equal(202);
      const runId = String(started.body.runId);

      // Paused in the middle of a transaction that holds fence_target's row 1, after some have committed.
      await eventually(async () => (await written(runId)).count > 0, 20_000);
      await running('fence-writer');
      paused.child.kill('SIGSTOP');
      const state = () => readFileSync(`/proc/${paused.child.pid}/stat`, 'utf8').split(' ')[2];
      expect(
        await applicationDelete(),
        "the application's DELETE, once the server ended the transaction",
      ).to.equal(1);
      expect(state(), 'still paused when the DELETE got its lock').to.equal('T');

      const takeover = await takeOver(taker);
      expect(state(), 'still paused when its task was taken over').to.equal('T');
      paused.child.kill('SIGCONT');

      const lost = await explained(runId);
      expect(lost.status).to.equal('abandoned');
      expect(lost.error).to.match(
        /^the process running it was alive but lost its lease: it could not be renewed for \d+ ms \(RUN_LEASE_MS is 3000\): the database was out of reach, or this process was paused; it stopped the task$/,
      );
      // Resumed, it learns it either from its timers or, when its waiting query results come first,
      // from the check before its next statement (test/leases.test.ts pins that order): either way
      // its rows end before the takeover.
      const mine = await written(runId);
      expect(mine.count, 'rows it wrote before the pause').to.be.greaterThan(0);
      expect(mine.last!.getTime(), 'its last row against the takeover').to.be.below(takeover.at.getTime());
      expect((await taker.runner.wait(takeover.run.id)).status).to.equal('succeeded');
    });

    it('a replica whose path to the database freezes one way sends no statement after its lease is taken over, and the server frees its row locks', async () => {
      const proxy: TcpProxy = track(await startTcpProxy(bouncer.url));
      const frozen = track(
        await startReplica(
          proxy.url,
          { RUN_LEASE_MS: '3000', DATABASE_QUERY_TIMEOUT_MS: '1500', DATABASE_CONNECT_TIMEOUT_MS: '1500' },
          { registry },
        ),
      );
      const taker = track(await startReplica(bouncer.url, { RUN_LEASE_MS: '3000' }, { registry }));
      const { run } = await frozen.runner.start({ task: 'writer', params: { ms: 60_000 }, trigger: 'cli' });

      // What it sends from now on stays on the way, as on a blackholed route; answers still come back.
      await eventually(async () => (await written(run.id)).count > 0, 20_000);
      await running('fence-writer');
      proxy.freeze('toServer');
      expect(
        await applicationDelete(),
        "the application's DELETE, once the server ended the transaction",
      ).to.equal(1);
      const takeover = await takeOver(taker);
      // The route recovers: whatever it still held is delivered now, after the takeover.
      proxy.restore();

      const lost = await frozen.runner.wait(run.id);
      expect(lost.status).to.equal('abandoned');
      expect(lost.error).to.match(/^the process running it was alive but lost its lease: /);
      const mine = await written(run.id);
      expect(mine.count, 'rows it wrote before the freeze').to.be.greaterThan(0);
      expect(mine.last!.getTime(), 'its last row against the takeover').to.be.below(takeover.at.getTime());
      expect((await taker.runner.wait(takeover.run.id)).status).to.equal('succeeded');
      // Nothing of it arrived late after that either.
      expect((await written(run.id)).count).to.equal(mine.count);
    });

    it("cancels a lost run's statement in flight, through PgBouncer, and records what happened", async () => {
      const owner = track(await startReplica(bouncer.url, {}, { registry }));
      const sweeper = track(await startReplica(bouncer.url, {}, { registry }));
      const { run } = await owner.runner.start({
        task: 'sql_sleeper',
        params: { seconds: 60 },
        trigger: 'cli',
      });
      await running('fence-sleeper');
      // As after a renewal that could not get through: the lease expires, and another replica's
      // sweep marks the run abandoned (the row lock its statement holds does not stop either).
      await db.sql.query(
        `update taskgate.task_lease set expires_at = clock_timestamp() - interval '1 second'`,
      );
      expect(await sweeper.runner.sweepAbandoned()).to.deep.equal([run.id]);
      // The owner's next renewal finds it so, and cancels the statement.
      await eventually(async () => {
        const { rows } = await adminQuery(
          `select 1 from pg_stat_activity where datname = $1 and state = 'active' and query like '%fence-sleeper%'`,
          [db.name],
        );
        return rows.length === 0;
      }, 10_000);
      const lost = await owner.runner.wait(run.id);
      expect(lost).to.include({
        status: 'abandoned',
        error:
          'the process running it was alive but lost its lease: the run was taken over or marked abandoned; it stopped the task',
      });
      const next = await eventually(
        () =>
          sweeper.runner
            .start({ task: 'sql_sleeper', params: { seconds: 0 }, trigger: 'cli' })
            .catch((error: TaskgateError) => (error.code === 'TASK_BUSY' ? null : Promise.reject(error))),
        10_000,
      );
      expect((await sweeper.runner.wait(next.run.id)).status).to.equal('succeeded');
    });
  });

  it('keeps the leases of two runs renewed while their long statements hold both connections of a pool of 2, and abandons neither', async () => {
    const hog = (name: string) =>
      validateTask(
        `${name}.ts`,
        defineTask({
          name,
          description: 'Runs long statements back to back.',
          schedule: null,
          params: z.strictObject({}),
          queryTimeoutMs: 60_000,
          async run({ db: sql }) {
            for (let i = 0; i < 3; i++) await sql.query('select pg_sleep(3) /* fence-hog */');
            return { statements: 3 };
          },
        }),
      );
    const hogs = new Registry([hog('hog_one'), hog('hog_two')]);
    const replica = track(
      await startReplica(db.url, { DATABASE_POOL_MAX: '2', RUN_LEASE_MS: '9000' }, { registry: hogs }),
    );
    const sweeper = track(await startReplica(db.url, { RUN_LEASE_MS: '9000' }, { registry: hogs }));
    const swept: string[] = [];
    const sweeping = setInterval(() => {
      void sweeper.runner.sweepAbandoned().then(
        (ids) => swept.push(...ids),
        () => undefined,
      );
    }, 500);
    try {
      const runs = await Promise.all(
        ['hog_one', 'hog_two'].map((task) => replica.runner.start({ task, trigger: 'cli' })),
      );
      const statements = await running('fence-hog', 2);
      const leases = async () =>
        (await db.sql.query('select run_id, expires_at from taskgate.task_lease order by run_id')).rows.map(
          (r) => (r.expires_at as Date).getTime(),
        );
      const before = await leases();
      // Both leases renewed while the same two statements still hold both connections of the pool.
      await eventually(async () => {
        const now = await leases();
        return now.length === 2 && now.every((at, i) => at > before[i]!);
      }, 10_000);
      const still = await running('fence-hog', 2);
      expect(still.map((s) => [s.pid, s.query_start.getTime()])).to.have.deep.members(
        statements.map((s) => [s.pid, s.query_start.getTime()]),
      );
      const ended = await Promise.all(runs.map(({ run }) => replica.runner.wait(run.id)));
      expect(ended.map((r) => r.status)).to.deep.equal(['succeeded', 'succeeded']);
      expect(swept, 'runs the other replica found abandoned').to.deep.equal([]);
    } finally {
      clearInterval(sweeping);
    }
  });

  it('says what happened to a run whose live process lost its lease while the database was out of reach', async () => {
    const proxy = track(await startTcpProxy(db.url));
    const cutOff = track(
      await startReplica(
        proxy.url,
        { RUN_LEASE_MS: '1500', DATABASE_QUERY_TIMEOUT_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '1000' },
        { registry },
      ),
    );
    const sweeper = track(await startReplica(db.url, { RUN_LEASE_MS: '1500' }, { registry }));
    const { run } = await cutOff.runner.start({ task: 'writer', params: { ms: 60_000 }, trigger: 'cli' });
    await eventually(async () => (await written(run.id)).count > 0, 10_000);
    proxy.cut();
    await eventually(async () => (await sweeper.runner.sweepAbandoned()).includes(run.id), 10_000);
    proxy.restore();
    const lost = await cutOff.runner.wait(run.id);
    expect(lost.status).to.equal('abandoned');
    expect(lost.error).to.match(
      /^the process running it was alive but lost its lease: it could not be renewed for \d+ ms \(RUN_LEASE_MS is 1500\): the database was out of reach, or this process was paused; it stopped the task$/,
    );
    expect(lost.result, 'what the task returned, kept').to.have.property('batches').that.is.a('number');
  });
});
