import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TEST_SECRET } from './support/runner.js';
import { type StubServer, stubServer } from './support/stub-server.js';

const ALERT_TASKS = fileURLToPath(new URL('./fixtures/tasks-alerts/', import.meta.url));

describe('taskgate run with alerts and heartbeats', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let receiver: StubServer;
  let env: Record<string, string>;
  before(async () => {
    db = await createTestDatabase();
    receiver = await stubServer(() => ({ status: 200, body: { ok: true } }));
    env = {
      DATABASE_URL: db.url,
      CRON_SECRET_KEY: TEST_SECRET,
      TASKS_DIR: ALERT_TASKS,
      ALERT_WEBHOOK_URL: `${receiver.url}/alerts/hook-token-123`,
      HEARTBEAT_URL_FLAKY: `${receiver.url}/ping/flaky-uuid-456`,
    };
  });
  beforeEach(() => receiver.seen.splice(0));
  after(async () => {
    await receiver.close();
    await db.drop();
  });

  it('a failed CLI run sends the failure alert and the start and fail heartbeats before the command exits', async () => {
    const { code, stdout, stderr } = await runCli(['run', 'flaky', '--param', 'fail=true', '--json'], env);
    expect(code, stderr).to.equal(1);
    const { id } = JSON.parse(stdout) as { id: string };
    // no waiting: the command itself waits for what it sends
    const paths = receiver.seen.map((r) => r.path);
    expect(paths).to.include(`/ping/flaky-uuid-456/start?rid=${id}`);
    expect(paths).to.include(`/ping/flaky-uuid-456/fail?rid=${id}`);
    const alerts = receiver.seen.filter((r) => r.path.startsWith('/alerts/')).map((r) => JSON.parse(r.body));
    expect(alerts.map((a) => [a.event, a.task, a.runId])).to.deep.equal([['task.failed', 'flaky', id]]);
    expect(stdout + stderr).to.not.include('hook-token-123');
    expect(stdout + stderr).to.not.include('flaky-uuid-456');
  });

  it('a succeeding CLI run after a failed one pings the success heartbeat and sends the recovery alert', async () => {
    const { code, stdout, stderr } = await runCli(['run', 'flaky', '--json'], env);
    expect(code, stderr).to.equal(0);
    const { id } = JSON.parse(stdout) as { id: string };
    const paths = receiver.seen.map((r) => r.path);
    expect(paths).to.include(`/ping/flaky-uuid-456/start?rid=${id}`);
    expect(paths).to.include(`/ping/flaky-uuid-456?rid=${id}`);
    const alerts = receiver.seen.filter((r) => r.path.startsWith('/alerts/')).map((r) => JSON.parse(r.body));
    expect(alerts.map((a) => [a.event, a.task])).to.deep.equal([['task.recovered', 'flaky']]);
  });

  it('a CLI run of a task with no heartbeat URL and no failure sends nothing', async () => {
    const { code, stderr } = await runCli(['run', 'steady'], env);
    expect(code, stderr).to.equal(0);
    expect(receiver.seen).to.deep.equal([]);
  });
});
