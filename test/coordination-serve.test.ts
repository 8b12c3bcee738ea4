import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { SHUTDOWN_MARGIN_MS } from '../src/cli/serve.js';
import { findRun } from '../src/core/runs.js';
import { runCli, type Served, startServe } from './support/cli.js';
import {
  COORDINATION_TASKS,
  createExecTable,
  eventually,
  executions,
  overlapping,
  trigger,
} from './support/coordination.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { adminQuery } from './support/global.js';
import { type PgBouncer, requirePgBouncer, startPgBouncer } from './support/pgbouncer.js';
import { TEST_SECRET } from './support/runner.js';
import { startTcpProxy } from './support/tcp-proxy.js';

const serveEnv = (url: string, extra: Record<string, string> = {}) => ({
  DATABASE_URL: url,
  CRON_SECRET_KEY: TEST_SECRET,
  TASKS_DIR: COORDINATION_TASKS,
  ...extra,
});

async function stop(served: Served): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  if (served.child.exitCode === null) served.child.kill('SIGTERM');
  const { code } = await served.exited;
  return { code, ms: Date.now() - started };
}

describe('three taskgate serve processes on one database', function () {
  this.timeout(120_000);
  let db: TestDatabase;
  before(async function () {
    requirePgBouncer(this, 'the PgBouncer suite');
    db = await createTestDatabase();
    await createExecTable(db.url);
  });
  after(async () => db?.drop());

  for (const mode of ['transaction', 'session', 'direct'] as const) {
    it(`never overlap two executions of a task under 150 triggers (${mode === 'direct' ? 'direct connection' : `PgBouncer, ${mode} mode`}), and leave it free after`, async () => {
      await db.sql.query('truncate coord_exec');
      let bouncer: PgBouncer | null = null;
      const servers: Served[] = [];
      try {
        if (mode !== 'direct') bouncer = await startPgBouncer({ targetUrl: db.url, poolMode: mode });
        const url = bouncer?.url ?? db.url;
        servers.push(
          ...(await Promise.all(
            [1, 2, 3].map(() => startServe(serveEnv(url, { RUN_LEASE_MS: '5000', DATABASE_POOL_MAX: '5' }))),
          )),
        );
        // 150 triggers over three seconds, round robin: many short runs, each one contended.
        const answers = await Promise.all(
          Array.from({ length: 150 }, async (_, i) => {
            await delay(i * 20);
            return trigger(servers[i % 3]!.base, 'exclusive', { ms: 300 });
          }),
        );
        const statuses = answers.map((a) => a.status);
        const unexpected = answers.filter((a) => a.status !== 200 && a.status !== 409);
        expect(
          unexpected.map((a) => a.body),
          'answers other than 200 and 409',
        ).to.deep.equal([]);
        // How many win the race depends on the machine's load; what matters is that none overlap.
        expect(statuses.filter((s) => s === 200).length, 'runs that succeeded').to.be.at.least(2);

        const list = await executions(db.url);
        expect(list.length).to.equal(statuses.filter((s) => s === 200).length);
        expect(overlapping(list), 'overlapping executions').to.deep.equal([]);
        expect(new Set(list.map((e) => e.pid)).size, 'replicas that ran it').to.be.at.least(2);

        // Nothing stuck: right after the wave, the task runs again.
        const after = await eventually(async () => {
          const answer = await trigger(servers[0]!.base, 'exclusive', { ms: 10 });
          return answer.status === 200 ? answer : null;
        }, 5_000);
        expect(after.body.status).to.equal('success');
      } finally {
        for (const served of servers) await stop(served);
        await bouncer?.stop();
      }
    });
  }
});

describe('taskgate serve when the database or the task misbehaves', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db.drop());

  for (const variant of ['sleeps', 'runs one long SQL statement'] as const) {
    it(`ends within SHUTDOWN_GRACE_MS plus ${SHUTDOWN_MARGIN_MS} ms on SIGTERM when a task ignores its signal and ${variant}, the run interrupted`, async () => {
      const sql = variant !== 'sleeps';
      const served = await startServe(serveEnv(db.url, { SHUTDOWN_GRACE_MS: '1000' }));
      const answer = await trigger(served.base, 'stubborn', { ms: 60_000, sql }, { Prefer: 'respond-async' });
      expect(answer.status).to.equal(202);
      await delay(300);
      const { code, ms } = await stop(served);
      expect(code).to.equal(0);
      expect(ms).to.be.below(1_000 + SHUTDOWN_MARGIN_MS);
      const run = await findRun(db.sql, String(answer.body.runId));
      expect(run?.status).to.equal('interrupted');
      // Nothing of it goes on in the database: its statement was cancelled.
      const { rows } = await adminQuery(
        `select count(*)::int as n from pg_stat_activity where datname = $1 and query like 'select pg_sleep%'`,
        [db.name],
      );
      expect(rows[0].n).to.equal(0);
      // Cancelled without node-postgres' deprecated Client.activeQuery (it warns on every read).
      expect(served.output()).not.to.include('activeQuery');
    });
  }

  it('rides out a database that is unreachable at start, logging each try, then serves', async () => {
    const proxy = await startTcpProxy(db.url);
    try {
      proxy.cut();
      // The database comes back only after taskgate has been refused twice: its first try fails
      // for sure, however long the process takes to start.
      void proxy.refused(2).then(() => proxy.restore());
      const served = await startServe(serveEnv(proxy.url));
      expect(served.output()).to.match(/database not reachable yet: retrying/);
      expect((await fetch(`${served.base}/readyz`)).status).to.equal(200);
      expect((await stop(served)).code).to.equal(0);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after DATABASE_STARTUP_TIMEOUT_MS with exit 1 and one line on stderr', async () => {
    const proxy = await startTcpProxy(db.url);
    try {
      proxy.cut();
      const result = await runCli(['serve'], serveEnv(proxy.url, { DATABASE_STARTUP_TIMEOUT_MS: '1500' }));
      expect(result.code).to.equal(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(/^taskgate: the database could not be reached in \d+ s \(\d+ tries; last: /);
      expect(result.stderr).not.to.include(TEST_SECRET);
    } finally {
      await proxy.close();
    }
  });
});
