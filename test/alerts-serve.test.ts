import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startServe } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventually } from './support/eventually.js';
import { TEST_SECRET } from './support/runner.js';
import { type StubServer, stubServer } from './support/stub-server.js';

const ALERT_TASKS = fileURLToPath(new URL('./fixtures/tasks-alerts/', import.meta.url));

describe('taskgate serve with alerts and heartbeats', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let receiver: StubServer;
  before(async () => {
    db = await createTestDatabase();
    receiver = await stubServer(() => ({ status: 200, body: { ok: true } }));
  });
  after(async () => {
    await receiver.close();
    await db.drop();
  });

  it('alerts about a task that is overdue on start, pings heartbeats for HTTP-triggered runs, and never logs either URL', async () => {
    await db.orm.em.getConnection().execute(
      `insert into taskgate.task_run (task, trigger, status, started_at, finished_at)
       values ('steady', 'test', 'succeeded', now() - interval '1 day', now() - interval '1 day')`,
    );
    const served = await startServe({
      DATABASE_URL: db.url,
      CRON_SECRET_KEY: TEST_SECRET,
      TASKS_DIR: ALERT_TASKS,
      ALERT_WEBHOOK_URL: `${receiver.url}/alerts/hook-token-123`,
      OVERDUE_CHECK_INTERVAL_MS: '60000',
      HEARTBEAT_URL_FLAKY: `${receiver.url}/ping/flaky-uuid-456`,
    });
    try {
      await eventually(async () => receiver.seen.some((r) => r.path.startsWith('/alerts/')), 10_000);
      const alert = JSON.parse(receiver.seen.find((r) => r.path.startsWith('/alerts/'))!.body);
      expect(alert).to.include({ event: 'task.overdue', task: 'steady' });

      const response = await fetch(`${served.base}/cron/flaky`, {
        method: 'POST',
        headers: { 'X-Cron-Secret': TEST_SECRET, 'Content-Type': 'application/json' },
        body: JSON.stringify({ fail: true }),
      });
      expect(response.status).to.equal(500);
      const { runId } = (await response.json()) as { runId: string };
      await eventually(
        async () => receiver.seen.filter((r) => r.path.startsWith('/alerts/')).length >= 2,
        10_000,
      );
      await eventually(async () => receiver.seen.some((r) => r.path.includes('/fail?')), 10_000);
      const paths = receiver.seen.map((r) => r.path);
      expect(paths).to.include(`/ping/flaky-uuid-456/start?rid=${runId}`);
      expect(paths).to.include(`/ping/flaky-uuid-456/fail?rid=${runId}`);
      const failure = receiver.seen
        .filter((r) => r.path.startsWith('/alerts/'))
        .map((r) => JSON.parse(r.body));
      expect(failure.map((a) => a.event)).to.deep.equal(['task.overdue', 'task.failed']);
    } finally {
      served.child.kill('SIGTERM');
      await served.exited;
    }
    const output = served.output();
    expect(output).to.include('"msg":"monitoring"');
    expect(output).to.not.include('hook-token-123');
    expect(output).to.not.include('flaky-uuid-456');
  });
});
