import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { loadConfig } from '../src/config.js';
import { loadRegistry, type Registry } from '../src/core/registry.js';
import type { Runner } from '../src/core/runner.js';
import { Alerts } from '../src/monitoring/alerts.js';
import { Heartbeats, pingUrl } from '../src/monitoring/heartbeat.js';
import { createMonitoring } from '../src/monitoring/monitoring.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { captureLogger, testRunner } from './support/runner.js';
import { type StubAnswer, type StubServer, stubServer } from './support/stub-server.js';

const ALERT_TASKS = fileURLToPath(new URL('./fixtures/tasks-alerts/', import.meta.url));
const WEBHOOK_TOKEN = 'T0000-B0000-webhook-token-never-logged';

describe('alerts and heartbeats', () => {
  let db: TestDatabase;
  let registry: Registry;
  let receiver: StubServer;
  let answer: StubAnswer;
  before(async () => {
    db = await createTestDatabase();
    registry = await loadRegistry(ALERT_TASKS);
    receiver = await stubServer(() => answer);
  });
  after(async () => {
    await receiver.close();
    await db.drop();
  });
  beforeEach(async () => {
    answer = { status: 200, body: { ok: true } };
    receiver.seen.length = 0;
    await db.orm.em.getConnection().execute('delete from taskgate.task_run; delete from taskgate.incident');
  });

  const received = () => receiver.seen.map((r) => ({ path: r.path, body: JSON.parse(r.body || 'null') }));

  describe('alerts', () => {
    let alerts: Alerts;
    let runner: Runner;
    let log: ReturnType<typeof captureLogger>;
    beforeEach(async () => {
      log = captureLogger();
      alerts = new Alerts({
        webhookUrl: `${receiver.url}/hooks/${WEBHOOK_TOKEN}`,
        logger: log.logger,
        db: db.sql,
        registry,
      });
      runner = await testRunner(db, { registry, listeners: [alerts.runListener] });
    });
    afterEach(async () => {
      await runner.close(0);
      await alerts.close();
    });

    async function run(params: Record<string, unknown>, dryRun = false) {
      const record = await runner.run({ task: 'flaky', params, trigger: 'test', dryRun });
      await alerts.settled();
      return record;
    }

    it('posts one Slack-compatible JSON alert when a run fails, then nothing for the same incident', async () => {
      const failed = await run({ fail: true });
      await run({ fail: true });
      const alertsSent = received();
      expect(alertsSent).to.have.length(1);
      expect(alertsSent[0]!.path).to.equal(`/hooks/${WEBHOOK_TOKEN}`);
      expect(alertsSent[0]!.body).to.include({
        event: 'task.failed',
        task: 'flaky',
        runId: failed.id,
        status: 'failed',
        error: 'the disk is full',
      });
      expect(alertsSent[0]!.body.text).to.include('flaky failed: the disk is full');
    });

    it('posts a recovery once the task succeeds, and a new alert when it fails again', async () => {
      await run({ fail: true });
      const ok = await run({});
      await run({});
      await run({ fail: true });
      const events = received().map((r) => [r.body.event, r.body.runId]);
      expect(events.map((e) => e[0])).to.deep.equal(['task.failed', 'task.recovered', 'task.failed']);
      expect(events[1]![1]).to.equal(ok.id);
    });

    it('ignores dry runs', async () => {
      await run({ fail: true }, true);
      expect(received()).to.deep.equal([]);
    });

    it('alerts once when a task turns overdue, however many checks or replicas notice it', async () => {
      await db.orm.em.getConnection().execute(
        `insert into taskgate.task_run (task, trigger, status, started_at, finished_at)
         values ('flaky', 'test', 'succeeded', '2030-01-01T00:02:00Z', '2030-01-01T00:02:01Z')`,
      );
      const now = new Date('2030-01-02T07:00:00Z');
      await alerts.checkOverdue(now);
      await alerts.checkOverdue(now);
      const replica = new Alerts({
        webhookUrl: `${receiver.url}/hooks/${WEBHOOK_TOKEN}`,
        logger: log.logger,
        db: db.sql,
        registry,
      });
      await replica.checkOverdue(now);
      const sent = received();
      expect(sent).to.have.length(1);
      expect(sent[0]!.body).to.include({
        event: 'task.overdue',
        task: 'flaky',
        dueAt: '2030-01-02T00:00:00.000Z',
        lastSuccessAt: '2030-01-01T00:02:00.000Z',
      });
      expect(sent[0]!.body.text).to.match(/flaky is overdue: a run was due at 2030-01-02T00:00:00.000Z/);
      await run({});
      expect(received().map((r) => r.body.event)).to.deep.equal(['task.overdue', 'task.recovered']);
    });

    it('keeps an alert the webhook refused and delivers it at the next check', async () => {
      answer = { status: 500, body: { error: 'down' } };
      await run({ fail: true });
      expect(receiver.seen).to.have.length(1);
      answer = { status: 200, body: { ok: true } };
      await alerts.checkOverdue(new Date());
      await alerts.checkOverdue(new Date());
      const sent = received();
      expect(sent).to.have.length(2);
      expect(sent[1]!.body).to.include({ event: 'task.failed', task: 'flaky' });
      expect(log.lines().some((line) => line.msg === 'alert not delivered')).to.equal(true);
      expect(log.text()).to.not.include(WEBHOOK_TOKEN);
    });

    it('starts a periodic check that alerts without any run in this process', async () => {
      await db.orm.em.getConnection().execute(
        `insert into taskgate.task_run (task, trigger, status, started_at, finished_at)
         values ('steady', 'test', 'failed', now() - interval '1 day', now() - interval '1 day')`,
      );
      alerts.start(60_000);
      await alerts.settled();
      expect(received().map((r) => [r.body.event, r.body.task])).to.deep.equal([['task.overdue', 'steady']]);
    });
  });

  describe('heartbeats', () => {
    let heartbeats: Heartbeats;
    let runner: Runner;
    let log: ReturnType<typeof captureLogger>;
    beforeEach(async () => {
      log = captureLogger();
      heartbeats = new Heartbeats({
        urls: { flaky: `${receiver.url}/ping/secret-uuid-1234` },
        logger: log.logger,
        retryDelayMs: 10,
      });
      runner = await testRunner(db, { registry, listeners: [heartbeats.runListener] });
    });
    afterEach(async () => runner.close(0));

    it('pings /start when a run starts and the bare URL when it succeeds, paired by run id', async () => {
      const run = await runner.run({ task: 'flaky', trigger: 'test' });
      await heartbeats.settled();
      expect(receiver.seen.map((r) => r.path)).to.deep.equal([
        `/ping/secret-uuid-1234/start?rid=${run.id}`,
        `/ping/secret-uuid-1234?rid=${run.id}`,
      ]);
      expect(JSON.parse(receiver.seen[1]!.body)).to.include({ task: 'flaky', status: 'succeeded' });
    });

    it('pings /fail with the error when a run fails', async () => {
      const run = await runner.run({ task: 'flaky', params: { fail: true }, trigger: 'test' });
      await heartbeats.settled();
      expect(receiver.seen.map((r) => r.path)).to.include(`/ping/secret-uuid-1234/fail?rid=${run.id}`);
      expect(JSON.parse(receiver.seen.at(-1)!.body)).to.include({ error: 'the disk is full' });
    });

    it('pings /log, never /fail or success, for a run an operator cancelled', async () => {
      const run = await runner.run({ task: 'flaky', trigger: 'test' });
      await heartbeats.settled();
      receiver.seen.splice(0);
      heartbeats.runListener.onFinish?.({ ...run, status: 'cancelled', error: 'cancelled by an operator' });
      await heartbeats.settled();
      expect(receiver.seen.map((r) => r.path)).to.deep.equal([`/ping/secret-uuid-1234/log?rid=${run.id}`]);
      expect(JSON.parse(receiver.seen[0]!.body)).to.include({ status: 'cancelled' });
    });

    it('stays silent for dry runs and for tasks without a URL', async () => {
      await runner.run({ task: 'flaky', trigger: 'test', dryRun: true });
      await runner.run({ task: 'steady', trigger: 'test' });
      await heartbeats.settled();
      expect(receiver.seen).to.deep.equal([]);
    });

    it('never fails or delays a run when the monitor is down, and never logs the URL', async () => {
      answer = { status: 503 };
      const run = await runner.run({ task: 'flaky', trigger: 'test' });
      expect(run.status).to.equal('succeeded');
      await heartbeats.settled();
      expect(receiver.seen).to.have.length(6);
      const warnings = log.lines().filter((line) => line.msg === 'heartbeat not delivered');
      expect(warnings.map((w) => w.beat)).to.deep.equal(['start', 'success']);
      expect(log.text()).to.not.include('secret-uuid-1234');
    });

    it('builds ping URLs that keep a path and a query string', () => {
      expect(pingUrl('https://hc-ping.com/abc/', 'fail', 'r1')).to.equal(
        'https://hc-ping.com/abc/fail?rid=r1',
      );
      expect(pingUrl('https://mon.example/p/key?x=1', 'start', 'r2')).to.equal(
        'https://mon.example/p/key/start?x=1&rid=r2',
      );
    });
  });

  describe('serve’s monitoring', () => {
    it('is off without ALERT_WEBHOOK_URL or heartbeat URLs, and warns about heartbeats naming no task', async () => {
      const log = captureLogger();
      expect(
        createMonitoring(loadConfig({}).scheduling, log.logger, { db: db.sql, registry }).listeners,
      ).to.deep.equal([]);
      const config = loadConfig({
        ALERT_WEBHOOK_URL: `${receiver.url}/hooks/x`,
        OVERDUE_CHECK_INTERVAL_MS: '0',
        HEARTBEAT_URL_FLAKY: `${receiver.url}/ping/a`,
        HEARTBEAT_URL_FLAKEY: `${receiver.url}/ping/b`,
      });
      const monitoring = createMonitoring(config.scheduling, log.logger, { db: db.sql, registry });
      expect(monitoring.listeners).to.have.length(2);
      monitoring.start();
      await monitoring.close();
      const warning = log.lines().find((line) => String(line.msg).startsWith('heartbeat URLs for tasks'));
      expect(warning?.variables).to.deep.equal(['HEARTBEAT_URL_FLAKEY']);
    });
  });
});
