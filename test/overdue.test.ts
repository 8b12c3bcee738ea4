import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { z } from 'zod';
import { ConfigError, loadConfig } from '../src/config.js';
import { taskCatalog } from '../src/core/catalog.js';
import { defaultGraceMs, overdueState } from '../src/core/overdue.js';
import { loadRegistry, type Registry, validateTask } from '../src/core/registry.js';
import { Schedule } from '../src/core/schedule.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const SCHEDULE_TASKS = fileURLToPath(new URL('./fixtures/tasks-schedule/', import.meta.url));
const HOUR = 3_600_000;
const at = (iso: string) => new Date(iso);

describe('overdue tasks', () => {
  describe('overdueState', () => {
    const daily = new Schedule('0 0 * * *');

    it('is due at the first scheduled moment after the last success and overdue once its grace has passed', () => {
      const since = at('2030-01-01T00:07:00Z');
      const before = overdueState(daily, since, at('2030-01-02T05:59:00Z'));
      expect(before.dueAt?.toISOString()).to.equal('2030-01-02T00:00:00.000Z');
      expect(before.graceMs).to.equal(6 * HOUR);
      expect(before.overdue).to.equal(false);
      expect(overdueState(daily, since, at('2030-01-02T06:00:01Z')).overdue).to.equal(true);
    });

    it('takes a task’s own grace period over the default', () => {
      const state = overdueState(daily, at('2030-01-01T00:00:00Z'), at('2030-01-02T00:20:00Z'), 15 * 60_000);
      expect(state).to.include({ graceMs: 15 * 60_000, overdue: true });
    });

    it('is never overdue for a task that has never run, for want of anything to be late against', () => {
      expect(overdueState(daily, null, at('2030-06-01T12:00:00Z'))).to.include({
        dueAt: null,
        overdue: false,
      });
    });

    it('refuses a task whose graceMs is not a positive whole number of milliseconds', () => {
      const task = { name: 'late', description: 'x.', schedule: '0 0 * * *', run: async () => null };
      expect(() => validateTask('late.ts', { ...task, params: z.strictObject({}), graceMs: -5 })).to.throw(
        /tasks\/late.ts: graceMs must be a positive integer/,
      );
    });

    it('defaults the grace to the gap to the following run, between one and six hours', () => {
      const due = at('2030-01-01T00:00:00Z');
      expect(defaultGraceMs(new Schedule('*/5 * * * *'), due)).to.equal(HOUR);
      expect(defaultGraceMs(new Schedule('0 */2 * * *'), due)).to.equal(2 * HOUR);
      expect(defaultGraceMs(new Schedule('0 0 * * *'), due)).to.equal(6 * HOUR);
      expect(defaultGraceMs(new Schedule('30 3 * * 0'), at('2030-01-06T03:30:00Z'))).to.equal(6 * HOUR);
    });
  });

  describe('the task catalog', () => {
    let db: TestDatabase;
    let registry: Registry;
    before(async () => {
      db = await createTestDatabase();
      registry = await loadRegistry(SCHEDULE_TASKS);
    });
    after(async () => db.drop());
    beforeEach(async () => db.orm.em.getConnection().execute('delete from taskgate.task_run'));

    async function addRun(task: string, status: string, startedAt: string, dryRun = false) {
      await db.orm.em.getConnection().execute(
        `insert into taskgate.task_run (task, trigger, status, dry_run, started_at, finished_at)
         values (?, 'test', ?, ?, ?, ?::timestamptz + interval '1 second')`,
        [task, status, dryRun, startedAt, startedAt],
      );
    }

    async function info(now: string) {
      const tasks = await taskCatalog(registry, db.sql, at(now));
      return Object.fromEntries(tasks.map((t) => [t.name, t]));
    }

    it('shows dueAt, graceMs and overdue from the last successful run', async () => {
      await addRun('nightly_a', 'succeeded', '2030-01-01T00:04:00Z');
      await addRun('nightly_a', 'failed', '2030-01-02T00:03:00Z');
      const tasks = await info('2030-01-02T07:00:00Z');
      expect(tasks.nightly_a).to.include({
        dueAt: '2030-01-02T00:00:00.000Z',
        graceMs: 6 * HOUR,
        overdue: true,
      });
      expect(tasks.nightly_a!.lastRun?.status).to.equal('failed');
      expect(tasks.nightly_a!.lastSuccess?.startedAt).to.equal('2030-01-01T00:04:00.000Z');
    });

    it('is not overdue while the due run is within its grace', async () => {
      await addRun('nightly_a', 'succeeded', '2030-01-01T00:04:00Z');
      expect((await info('2030-01-02T05:00:00Z')).nightly_a).to.include({ overdue: false });
    });

    it('counts a task that has failed ever since its first run as overdue', async () => {
      await addRun('quarter_hourly', 'failed', '2030-01-01T10:00:00Z');
      await addRun('quarter_hourly', 'failed', '2030-01-01T10:15:00Z');
      const tasks = await info('2030-01-01T11:16:00Z');
      expect(tasks.quarter_hourly).to.include({ dueAt: '2030-01-01T10:15:00.000Z', overdue: true });
    });

    it('ignores dry runs: they prove nothing about the real job', async () => {
      await addRun('nightly_b', 'succeeded', '2030-01-01T00:04:00Z');
      await addRun('nightly_b', 'succeeded', '2030-01-03T00:04:00Z', true);
      expect((await info('2030-01-03T07:00:00Z')).nightly_b).to.include({
        dueAt: '2030-01-02T00:00:00.000Z',
        overdue: true,
      });
    });

    it('uses the task’s own graceMs', async () => {
      await addRun('weekly_report', 'succeeded', '2030-01-07T06:31:00Z');
      const tasks = await info('2030-01-14T07:01:00Z');
      expect(tasks.weekly_report).to.include({ graceMs: 30 * 60_000, overdue: true });
    });

    it('leaves on-demand and never-run tasks not overdue, with no due time', async () => {
      const tasks = await info('2030-01-14T07:01:00Z');
      expect(tasks.on_demand).to.include({ dueAt: null, graceMs: null, overdue: false });
      expect(tasks.nightly_a).to.include({ dueAt: null, overdue: false });
    });
  });

  describe('configuration', () => {
    it('reads ALERT_WEBHOOK_URL, the check interval and per-task heartbeat URLs', () => {
      const config = loadConfig({
        ALERT_WEBHOOK_URL: 'https://hooks.example.com/T000/B000/xyz',
        OVERDUE_CHECK_INTERVAL_MS: '60000',
        HEARTBEAT_URL_NIGHTLY_A: 'https://hc-ping.com/1111',
        HEARTBEAT_URL_EMPTY: ' ',
      });
      expect(config.scheduling).to.deep.equal({
        alertWebhookUrl: 'https://hooks.example.com/T000/B000/xyz',
        overdueCheckMs: 60_000,
        heartbeatUrls: { nightly_a: 'https://hc-ping.com/1111' },
        remoteUrl: undefined,
        internalClock: true,
      });
      expect(loadConfig({}).scheduling).to.include({ alertWebhookUrl: undefined, overdueCheckMs: 300_000 });
    });

    it('refuses a URL that is not http(s), naming the variable and never echoing the value', () => {
      expect(() => loadConfig({ ALERT_WEBHOOK_URL: 'ftp://secret-token@host' }))
        .to.throw(ConfigError, /^ALERT_WEBHOOK_URL must be an http/)
        .with.property('message')
        .that.does.not.include('secret-token');
      expect(() => loadConfig({ HEARTBEAT_URL_NIGHTLY_A: 'not a url secret-uuid' }))
        .to.throw(ConfigError, /^HEARTBEAT_URL_NIGHTLY_A must be an http/)
        .with.property('message')
        .that.does.not.include('secret-uuid');
      expect(() => loadConfig({ 'HEARTBEAT_URL_bad-name': 'https://hc-ping.com/1' })).to.throw(
        ConfigError,
        /task name in capitals/,
      );
    });
  });
});
