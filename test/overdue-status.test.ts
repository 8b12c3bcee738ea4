import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { taskCatalog } from '../src/core/catalog.js';
import { loadRegistry } from '../src/core/registry.js';
import type { Runner } from '../src/core/runner.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { Metrics } from '../src/monitoring/metrics.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TEST_SECRET, testConfig, testRunner } from './support/runner.js';

const SCHEDULE_TASKS = fileURLToPath(new URL('./fixtures/tasks-schedule/', import.meta.url));

describe('taskgate status', () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  before(async () => {
    db = await createTestDatabase();
    env = { DATABASE_URL: db.url, CRON_SECRET_KEY: TEST_SECRET, TASKS_DIR: SCHEDULE_TASKS };
  });
  after(async () => db.drop());
  beforeEach(async () => db.orm.em.getConnection().execute('delete from taskgate.task_run'));

  async function addRun(task: string, status: string, startedAgo: string) {
    await db.orm.em.getConnection().execute(
      `insert into taskgate.task_run (task, trigger, status, started_at, finished_at)
       values (?, 'test', ?, now() - ?::interval, now() - ?::interval + interval '1 second')`,
      [task, status, startedAgo, startedAgo],
    );
  }

  it('exits 1 naming the overdue tasks, and marks them OVERDUE in its table', async () => {
    await addRun('nightly_a', 'succeeded', '3 days');
    await addRun('nightly_b', 'succeeded', '1 minute');
    const { code, stdout, stderr } = await runCli(['status'], env);
    expect(code, stderr).to.equal(1);
    expect(stdout).to.match(/^TASK\s+SCHEDULE\s+LAST RUN\s+LAST SUCCESS\s+DUE\s+STATE/);
    expect(stdout).to.match(/\nnightly_a\s+0 0 \* \* \*\s+succeeded \S+\s+\S+\s+\S+\s+OVERDUE\n/);
    expect(stdout).to.match(/\nnightly_b\s+.*\s+ok\n/);
    expect(stdout).to.match(/\non_demand\s+-\s+-\s+-\s+-\s+on demand\n/);
    expect(stderr).to.include('taskgate: overdue: nightly_a');
  });

  it('exits 0 with --json giving dueAt, graceMs and overdue for every task when nothing is late', async () => {
    await addRun('nightly_a', 'succeeded', '1 minute');
    const { code, stdout } = await runCli(['status', '--json'], env);
    expect(code).to.equal(0);
    const tasks = JSON.parse(stdout) as Record<string, unknown>[];
    const nightly = tasks.find((t) => t.name === 'nightly_a')!;
    expect(nightly).to.include({ overdue: false, graceMs: 6 * 3_600_000 });
    expect(nightly.dueAt).to.be.a('string');
    expect(nightly).to.not.have.property('params');
    expect(tasks.find((t) => t.name === 'on_demand')).to.include({ dueAt: null, overdue: false });
  });

  describe('--url', () => {
    let server: Server;
    let runner: Runner;
    let url: string;
    before(async () => {
      const registry = await loadRegistry(SCHEDULE_TASKS);
      runner = await testRunner(db, { registry });
      const logger = createLogger({ level: 'silent', pretty: false });
      const metrics = new Metrics({ tasks: () => taskCatalog(registry, db.sql, new Date()) });
      const app = createApp({ db: db.sql, logger, config: testConfig(db), registry, runner, metrics });
      server = await new Promise<Server>((resolve) => {
        const s = app.listen(0, '127.0.0.1', () => resolve(s));
      });
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await runner.close(0);
    });

    it('reads the same from a remote taskgate through GET /cron, signed or not', async () => {
      await addRun('quarter_hourly', 'failed', '2 hours');
      const remote = await runCli(['status', '--url', url, '--json'], { CRON_SECRET_KEY: TEST_SECRET });
      expect(remote.code, remote.stderr).to.equal(1);
      const tasks = JSON.parse(remote.stdout) as Record<string, unknown>[];
      expect(tasks.find((t) => t.name === 'quarter_hourly')).to.include({ overdue: true });
      const signed = await runCli(['status', '--url', url, '--sign'], { CRON_SECRET_KEY: TEST_SECRET });
      expect(signed.stdout).to.match(/\nquarter_hourly\s+.*OVERDUE\n/);
      expect(signed.stdout + signed.stderr).to.not.include(TEST_SECRET);
    });

    it('exports the same overdue flags as the taskgate_task_overdue gauge', async () => {
      await addRun('quarter_hourly', 'failed', '2 hours');
      await addRun('nightly_a', 'succeeded', '1 minute');
      const text = await (await fetch(`${url}/metrics`)).text();
      expect(text).to.match(/^taskgate_task_overdue\{task="quarter_hourly"\} 1$/m);
      expect(text).to.match(/^taskgate_task_overdue\{task="nightly_a"\} 0$/m);
    });

    it('exits 2 when the remote refuses the secret', async () => {
      const refused = await runCli(['status', '--url', url], {
        CRON_SECRET_KEY: '5c0d7e2a9b41f36e8d05a7c3b9e14f2d6a8c0e3b',
      });
      expect(refused.code).to.equal(2);
      expect(refused.stderr).to.include('missing or invalid credentials');
    });
  });
});
