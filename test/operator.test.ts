import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import request from 'supertest';
import { taskCatalog } from '../src/core/catalog.js';
import { RUN_LOG_MAX_BYTES, RUN_LOG_MAX_LINES } from '../src/core/runLog.js';
import { deleteRunsBefore } from '../src/core/runs.js';
import { createLogger } from '../src/logger.js';
import { Alerts } from '../src/monitoring/alerts.js';
import { CLI, runCli, WORKDIR } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventually } from './support/eventually.js';
import { buildApp, SECRET, type TestApp } from './support/http.js';
import { type StubServer, stubServer } from './support/stub-server.js';

const OPERATOR_TASKS = fileURLToPath(new URL('./fixtures/tasks-operator/', import.meta.url));

describe('operator controls', () => {
  let db: TestDatabase;
  let app: TestApp;
  const post = (path: string, body?: object) => {
    const req = request(app.callback).post(path).set('X-Cron-Secret', SECRET);
    return body ? req.send(body) : req;
  };
  const get = (path: string) => request(app.callback).get(path).set('X-Cron-Secret', SECRET);
  const query = async (sql: string, params: unknown[] = []) => (await db.sql.query(sql, params)).rows;
  const runCount = async (task: string) =>
    Number((await query('select count(*)::int as n from taskgate.task_run where task = $1', [task]))[0]!.n);

  /** Polls GET /cron/runs/:id until the run is no longer running. */
  async function settled(runId: string) {
    for (let i = 0; i < 400; i++) {
      const res = await get(`/cron/runs/${runId}`);
      if (res.body.run.status !== 'running') return res.body.run;
      await delay(25);
    }
    throw new Error(`run ${runId} still running`);
  }

  async function startSleepy(ms = 30_000): Promise<string> {
    const res = await post('/cron/sleepy', { ms }).set('Prefer', 'respond-async');
    expect(res.status, JSON.stringify(res.body)).to.equal(202);
    return res.body.runId;
  }

  before(async () => {
    db = await createTestDatabase();
    app = await buildApp(db.sql, {}, { tasksDir: OPERATOR_TASKS });
  });
  after(async () => {
    await app.close();
    await db.drop();
  });
  beforeEach(async () => {
    await query('delete from taskgate.task_run');
    await query('delete from taskgate.task_pause');
    await query('delete from taskgate.task_pause_event');
    await query('delete from taskgate.task_lease');
  });

  describe('cancel', () => {
    it('answers 202 at once; the run stops at its next safe point and is recorded cancelled with who and why', async () => {
      const runId = await startSleepy(30_000);
      const res = await post(`/cron/runs/${runId}/cancel`, { reason: 'wrong params' });
      expect(res.status).to.equal(202);
      expect(res.body).to.include({ status: 'accepted', task: 'sleepy', runId });
      expect(res.body.cancel).to.include({ by: 'http', reason: 'wrong params' });
      const run = await settled(runId);
      expect(run).to.include({ status: 'cancelled', error: 'cancelled by http: wrong params' });
      expect(run.result).to.deep.equal({ slept: 30_000, stopped: true });
      expect(run.durationMs).to.be.below(5_000);
      expect(run.cancel).to.include({ by: 'http', reason: 'wrong params' });
      expect(Date.parse(run.cancel.requestedAt)).to.be.at.most(Date.parse(run.finishedAt));
      const log = (await get(`/cron/runs/${runId}?logs=1`)).body.log;
      expect(log.lines.map((l: { msg: string }) => l.msg)).to.include('cancel requested: stopping the run');
    });

    it('answers a synchronous trigger whose run is cancelled 409 TASK_CANCELLED, not a server error', async () => {
      const pending = post('/cron/sleepy', { ms: 30_000 }).then((r) => r);
      const running = await (async () => {
        for (let i = 0; i < 100; i++) {
          const [row] = await query(`select id from taskgate.task_run where status = 'running'`);
          if (row) return String(row.id);
          await delay(20);
        }
        throw new Error('the run did not start');
      })();
      await post(`/cron/runs/${running}/cancel`).expect(202);
      const res = await pending;
      expect(res.status).to.equal(409);
      expect(res.body).to.include({ code: 'TASK_CANCELLED', runId: running, runStatus: 'cancelled' });
    });

    it('answers 409 RUN_ENDED with the status for a run that has ended, and 404 for an unknown run', async () => {
      const done = await post('/cron/sleepy', { ms: 0 }).expect(200);
      const ended = await post(`/cron/runs/${done.body.runId}/cancel`, { reason: 'too late' });
      expect(ended.status).to.equal(409);
      expect(ended.body).to.include({ code: 'RUN_ENDED', runStatus: 'succeeded' });
      expect((await settled(done.body.runId)).cancel).to.equal(null);
      const unknown = await post('/cron/runs/00000000-0000-4000-8000-000000000000/cancel');
      expect(unknown.status).to.equal(404);
      expect(unknown.body.code).to.equal('RUN_NOT_FOUND');
      expect((await post('/cron/runs/not-a-uuid/cancel')).body.code).to.equal('RUN_NOT_FOUND');
    });

    it('refuses a reason over 500 characters, a run of another task, an unknown task and unknown fields, changing nothing', async () => {
      const runId = await startSleepy(30_000);
      const refusals = await Promise.all([
        post(`/cron/runs/${runId}/cancel`, { reason: 'x'.repeat(501) }),
        post(`/cron/runs/${runId}/cancel`, { task: 'chatty' }),
        post(`/cron/runs/${runId}/cancel`, { task: 'no_such_task' }),
        post(`/cron/runs/${runId}/cancel`, { because: 'typo' }),
        post(`/cron/runs/${runId}/cancel`, { reason: 42 }),
      ]);
      expect(refusals.map((r) => [r.status, r.body.code])).to.deep.equal([
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [404, 'TASK_NOT_FOUND'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
      ]);
      expect(refusals[0]!.body.message).to.equal('reason is longer than 500 characters');
      expect(refusals[1]!.body.message).to.equal(`run ${runId} is a run of sleepy, not of chatty`);
      const [row] = await query('select status, cancel_requested_at from taskgate.task_run where id = $1', [
        runId,
      ]);
      expect(row).to.deep.equal({ status: 'running', cancel_requested_at: null });
      await post(`/cron/runs/${runId}/cancel`, { task: 'sleepy', reason: 'x'.repeat(500) }).expect(202);
      expect((await settled(runId)).status).to.equal('cancelled');
    });
  });

  it('asks for the secret on every control, changing nothing without it', async () => {
    const runId = await startSleepy(30_000);
    const anonymous = (path: string) => request(app.callback).post(path).send({ reason: 'r' });
    const answers = await Promise.all([
      anonymous(`/cron/runs/${runId}/cancel`),
      anonymous(`/cron/runs/${runId}/rerun`),
      anonymous('/cron/sleepy/pause'),
      anonymous('/cron/sleepy/resume'),
      request(app.callback).get(`/cron/runs/${runId}?logs=1`),
      request(app.callback).get('/cron/sleepy/pauses'),
    ]);
    expect(answers.map((a) => a.status)).to.deep.equal([401, 401, 401, 401, 401, 401]);
    expect(await query('select * from taskgate.task_pause')).to.deep.equal([]);
    expect(await runCount('sleepy')).to.equal(1);
    const [row] = await query('select cancel_requested_at from taskgate.task_run where id = $1', [runId]);
    expect(row!.cancel_requested_at).to.equal(null);
    await post(`/cron/runs/${runId}/cancel`).expect(202);
    await settled(runId);
  });

  describe('pause and resume', () => {
    it('answers triggers of a paused task 423 TASK_PAUSED with the reason and until, starts no run, and runs again once resumed', async () => {
      const until = new Date(Date.now() + 3_600_000).toISOString();
      const paused = await post('/cron/sleepy/pause', { reason: 'database maintenance', until });
      expect(paused.status).to.equal(200);
      expect(paused.body.pause).to.include({
        task: 'sleepy',
        reason: 'database maintenance',
        pausedBy: 'http',
        until,
      });

      const refused = await post('/cron/sleepy', { ms: 0 });
      expect(refused.status).to.equal(423);
      expect(refused.body).to.include({
        code: 'TASK_PAUSED',
        task: 'sleepy',
        reason: 'database maintenance',
        until,
        pausedBy: 'http',
      });
      expect(refused.body.message).to.equal(`sleepy is paused until ${until}: database maintenance`);
      expect(await runCount('sleepy')).to.equal(0);
      // Other tasks are not held back.
      await post('/cron/chatty').expect(200);

      const catalog = (await get('/cron')).body.tasks;
      const sleepy = catalog.find((t: { name: string }) => t.name === 'sleepy');
      expect(sleepy).to.include({ paused: true, overdue: false });
      expect(sleepy.pause).to.include({ reason: 'database maintenance', until });
      expect(catalog.find((t: { name: string }) => t.name === 'chatty')).to.include({
        paused: false,
        pause: null,
      });

      const scraped = (await request(app.callback).get('/metrics')).text;
      expect(scraped).to.include('taskgate_task_paused{task="sleepy"} 1');
      expect(scraped).to.include('taskgate_task_paused{task="chatty"} 0');

      const resumed = await post('/cron/sleepy/resume', { reason: 'done' });
      expect(resumed.body).to.include({ status: 'success', resumed: true });
      await post('/cron/sleepy', { ms: 0 }).expect(200);
      const [row] = await query(
        'select resumed_by, resume_reason, resumed_at is not null as resumed from taskgate.task_pause',
      );
      expect(row).to.deep.equal({ resumed_by: 'http', resume_reason: 'done', resumed: true });
      const again = await post('/cron/sleepy/resume');
      expect(again.body).to.include({ resumed: false, message: 'sleepy was not paused' });
    });

    it('ends a pause with until by itself', async () => {
      const until = new Date(Date.now() + 1_000).toISOString();
      await post('/cron/sleepy/pause', { reason: 'a short window', until }).expect(200);
      expect((await post('/cron/sleepy', { ms: 0 })).status).to.equal(423);
      await delay(Date.parse(until) - Date.now() + 50);
      expect((await post('/cron/sleepy', { ms: 0 })).status).to.equal(200);
      expect(
        (await get('/cron')).body.tasks.find((t: { name: string }) => t.name === 'sleepy').paused,
      ).to.equal(false);
    });

    it('refuses a pause without a reason, with an until past or not a date, or of an unknown task, changing nothing', async () => {
      const answers = await Promise.all([
        post('/cron/sleepy/pause'),
        post('/cron/sleepy/pause', { reason: '   ' }),
        post('/cron/sleepy/pause', { reason: 'r', until: '2000-01-01T00:00:00Z' }),
        post('/cron/sleepy/pause', { reason: 'r', until: 'tomorrow' }),
        post('/cron/sleepy/pause', { reason: 'r', until: '2099-01-01T00:00:00' }),
        post('/cron/sleepy/pause', { reason: 'x'.repeat(501) }),
        post('/cron/no_such_task/pause', { reason: 'r' }),
        post('/cron/no_such_task/resume'),
      ]);
      expect(answers.map((a) => [a.status, a.body.code])).to.deep.equal([
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [404, 'TASK_NOT_FOUND'],
        [404, 'TASK_NOT_FOUND'],
      ]);
      expect(answers[2]!.body.message).to.equal('until must be in the future');
      expect(await query('select * from taskgate.task_pause')).to.deep.equal([]);
    });

    it('keeps every pause and resume with who, why and until, newest first: GET /cron/:task/pauses; a resume of nothing and a refused pause are not history', async () => {
      const until = new Date(Date.now() + 3_600_000).toISOString();
      await post('/cron/sleepy/pause', { reason: 'backup' }).expect(200);
      await post('/cron/sleepy/pause', { reason: 'backup runs late', until }).expect(200);
      await post('/cron/sleepy/resume', { reason: 'backup done' }).expect(200);
      expect((await post('/cron/sleepy/resume')).body.resumed).to.equal(false);
      await post('/cron/sleepy/pause', { reason: 'r', until: '2000-01-01T00:00:00Z' }).expect(400);

      const history = await get('/cron/sleepy/pauses');
      expect(history.status, JSON.stringify(history.body)).to.equal(200);
      expect(history.body.task).to.equal('sleepy');
      const events = history.body.events as { at: string }[];
      expect(
        events.map(({ at: _at, id: _id, ...event }: { at: string; id?: number }) => event),
      ).to.deep.equal([
        { task: 'sleepy', action: 'resumed', by: 'http', reason: 'backup done', until: null },
        { task: 'sleepy', action: 'paused', by: 'http', reason: 'backup runs late', until },
        { task: 'sleepy', action: 'paused', by: 'http', reason: 'backup', until: null },
      ]);
      const times = events.map((event) => Date.parse(event.at));
      expect(times).to.deep.equal([...times].sort((a, b) => b - a));
      // The last pause's row agrees with its event, written by the same statement.
      const [pause] = await query('select paused_at, resumed_at from taskgate.task_pause');
      expect(new Date(pause!.resumed_at as string).toISOString()).to.equal(events[0]!.at);
      expect(new Date(pause!.paused_at as string).toISOString()).to.equal(events[1]!.at);

      expect((await get('/cron/sleepy/pauses?limit=1')).body.events).to.have.length(1);
      expect((await get('/cron/chatty/pauses')).body.events).to.deep.equal([]);
      const refused = await Promise.all([
        get('/cron/sleepy/pauses?limit=0'),
        get('/cron/sleepy/pauses?limit=501'),
        get('/cron/sleepy/pauses?limit=ten'),
        get('/cron/sleepy/pauses?task=chatty'),
        get('/cron/no_such_task/pauses'),
      ]);
      expect(refused.map((a) => [a.status, a.body.code])).to.deep.equal([
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [400, 'BAD_REQUEST'],
        [404, 'TASK_NOT_FOUND'],
      ]);
      expect(refused[0]!.body.message).to.equal('limit must be a whole number from 1 to 500');
    });

    it('raises no overdue alert for a paused task, and counts it due again from the end of the pause', async () => {
      // sleepy runs hourly: a success three hours ago makes it overdue (grace one hour).
      await query(
        `insert into taskgate.task_run (task, trigger, status, started_at, finished_at)
         values ('sleepy', 'http', 'succeeded', now() - interval '3 hours', now() - interval '3 hours')`,
      );
      const now = () => new Date();
      const overdue = async () =>
        (await taskCatalog(app.registry, db.sql, now())).find((t) => t.name === 'sleepy')!;
      expect((await overdue()).overdue).to.equal(true);

      const webhook: StubServer = await stubServer(() => ({ status: 200 }));
      const alerts = new Alerts({
        webhookUrl: webhook.url,
        logger: createLogger({ level: 'silent', pretty: false }),
        db: db.sql,
        registry: app.registry,
      });
      try {
        await post('/cron/sleepy/pause', { reason: 'host migration' }).expect(200);
        expect(await overdue()).to.include({ overdue: false, paused: true });
        await alerts.checkOverdue();
        expect(webhook.seen, 'alerts while paused').to.deep.equal([]);
        expect(await query('select * from taskgate.incident')).to.deep.equal([]);

        // Resumed: the missed runs were held back on purpose; the next one is due from now.
        await post('/cron/sleepy/resume').expect(200);
        expect(await overdue()).to.include({ overdue: false, paused: false });
        await alerts.checkOverdue();
        expect(webhook.seen).to.deep.equal([]);
        // Once the run due after the pause is late past its grace, it is overdue again.
        const later = new Date(Date.now() + 3 * 3_600_000);
        const afterwards = (await taskCatalog(app.registry, db.sql, later)).find((t) => t.name === 'sleepy')!;
        expect(afterwards.overdue).to.equal(true);
      } finally {
        await alerts.close();
        await webhook.close();
        await query('delete from taskgate.incident');
      }
    });
  });

  describe('rerun', () => {
    it('starts a new run with the same params and dry-run flag, linked to the run it repeats', async () => {
      const first = await post('/cron/sleepy', { ms: 5, dryRun: true }).expect(200);
      const rerun = await post(`/cron/runs/${first.body.runId}/rerun`, { reason: 'after the fix' });
      expect(rerun.status).to.equal(200);
      expect(rerun.body).to.include({ status: 'success', task: 'sleepy', dryRun: true });
      expect(rerun.body.runId).to.not.equal(first.body.runId);
      const run = (await get(`/cron/runs/${rerun.body.runId}`)).body.run;
      expect(run).to.include({
        rerunOf: first.body.runId,
        rerunReason: 'after the fix',
        trigger: 'http',
        dryRun: true,
      });
      expect(run.params).to.deep.equal({ ms: 5 });
      const original = (await get(`/cron/runs/${first.body.runId}`)).body.run;
      expect(original).to.include({ rerunOf: null, status: 'succeeded' });
    });

    it('is refused 423 while the task is paused, 409 while the run is still running, 404 for an unknown run', async () => {
      const runId = await startSleepy(30_000);
      const busy = await post(`/cron/runs/${runId}/rerun`);
      expect([busy.status, busy.body.code]).to.deep.equal([409, 'TASK_BUSY']);
      await post(`/cron/runs/${runId}/cancel`).expect(202);
      await settled(runId);
      await post('/cron/sleepy/pause', { reason: 'hold' }).expect(200);
      const paused = await post(`/cron/runs/${runId}/rerun`);
      expect([paused.status, paused.body.code]).to.deep.equal([423, 'TASK_PAUSED']);
      const unknown = await post('/cron/runs/00000000-0000-4000-8000-000000000000/rerun');
      expect([unknown.status, unknown.body.code]).to.deep.equal([404, 'RUN_NOT_FOUND']);
      const other = await post(`/cron/runs/${runId}/rerun`, { task: 'chatty' });
      expect([other.status, other.body.code]).to.deep.equal([400, 'BAD_REQUEST']);
      expect(await runCount('sleepy')).to.equal(1);
    });
  });

  describe('what a run said', () => {
    it("keeps the task's lines and the runner's own with the run: GET /cron/runs/:id?logs=1", async () => {
      const res = await post('/cron/sleepy', { ms: 1 }).expect(200);
      const plain = await get(`/cron/runs/${res.body.runId}`);
      expect(plain.body).to.not.have.property('log');
      const { body } = await get(`/cron/runs/${res.body.runId}?logs=1`);
      expect(body.run.id).to.equal(res.body.runId);
      const messages = body.log.lines.map((l: { msg: string }) => l.msg);
      expect(messages).to.deep.equal(['run started', 'going to sleep']);
      for (const line of body.log.lines) expect(line).to.include({ task: 'sleepy', runId: res.body.runId });
      expect(body.log.dropped).to.equal(0);
      expect((await get(`/cron/runs/${res.body.runId}?logs=yes`)).status).to.equal(400);
    });

    it(`bounds a run's log: a task that logs without end keeps ${RUN_LOG_MAX_LINES} lines within ${RUN_LOG_MAX_BYTES} bytes and counts the rest`, async () => {
      const res = await post('/cron/chatty', { lines: 20_000 }).expect(200);
      const { log } = (await get(`/cron/runs/${res.body.runId}?logs=1`)).body;
      expect(log.lines.length).to.be.at.most(RUN_LOG_MAX_LINES);
      expect(log.bytes).to.be.at.most(RUN_LOG_MAX_BYTES);
      expect(
        Buffer.byteLength(log.lines.map((l: unknown) => `${JSON.stringify(l)}\n`).join('')),
      ).to.be.at.most(RUN_LOG_MAX_BYTES);
      // 'run started' plus 20,000 lines of the task: every one kept or counted.
      expect(log.lines.length + log.dropped).to.equal(20_001);
      expect(log.lines[1]).to.include({ msg: 'still talking', line: 1 });
    });

    it('redacts secret-looking fields in the kept log as the process log does', async () => {
      const res = await post('/cron/secretive').expect(200);
      const { log } = (await get(`/cron/runs/${res.body.runId}?logs=1`)).body;
      const kept = JSON.stringify(log);
      for (const secret of ['hunter2-password-value', 'client-secret-value-123', 'db-password-value']) {
        expect(kept).to.not.include(secret);
        expect(app.logs.text).to.not.include(secret);
      }
      const line = log.lines.find((l: { msg: string }) => l.msg === 'connecting with credentials');
      expect(line).to.deep.include({ password: '[redacted]', client: { secret: '[redacted]' } });
      expect(line.config).to.deep.equal({ databaseUrl: '[redacted]' });
      // The very line of the process log, not a second rendering of it.
      const written = app.logs
        .lines()
        .find((l) => l.msg === 'connecting with credentials' && l.runId === res.body.runId);
      expect(written).to.deep.equal(line);
    });

    it('goes with its run when the history is pruned', async () => {
      const res = await post('/cron/sleepy', { ms: 0 }).expect(200);
      expect(
        await query('select run_id from taskgate.run_log where run_id = $1', [res.body.runId]),
      ).to.have.length(1);
      await query(`update taskgate.task_run set started_at = now() - interval '200 days' where id = $1`, [
        res.body.runId,
      ]);
      expect(await deleteRunsBefore(db.sql, new Date(Date.now() - 90 * 86_400_000), 100)).to.equal(1);
      expect(await query('select run_id from taskgate.run_log')).to.deep.equal([]);
    });

    it('keeps what a run logged until shortly before its process was killed, once it is marked abandoned', async function () {
      this.timeout(60_000);
      // The real `taskgate run` in a process of its own, with a short lease so that it expires soon.
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', CLI, 'run', 'sleepy', '--param', 'ms=120000'],
        {
          cwd: WORKDIR,
          env: {
            PATH: process.env.PATH,
            NODE_ENV: 'test',
            DATABASE_URL: db.url,
            TASKS_DIR: OPERATOR_TASKS,
            CRON_SECRET_KEY: SECRET,
            RUN_LEASE_MS: '1500',
          },
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      const exited = once(child, 'exit');
      try {
        const runId = await eventually(
          async () => (await get('/cron/runs?task=sleepy&status=running')).body.runs[0]?.id as string,
          20_000,
        );
        // The task's line reaches the run's log with a lease renewal, while the run goes on.
        const whileRunning = await eventually(async () => {
          const { body } = await get(`/cron/runs/${runId}?logs=1`);
          return body.log?.lines.some((l: { msg: string }) => l.msg === 'going to sleep') && body;
        }, 10_000);
        expect(whileRunning.run.status).to.equal('running');
        child.kill('SIGKILL');
        await exited;

        // What `serve` does periodically: the dead process's lease expires and its run is swept.
        await eventually(async () => (await app.runner.sweepAbandoned()).includes(runId), 10_000);
        const { body } = await get(`/cron/runs/${runId}?logs=1`);
        expect(body.run).to.include({ status: 'abandoned' });
        expect(body.log.lines.map((l: { msg: string }) => l.msg)).to.deep.equal([
          'run started',
          'going to sleep',
        ]);
        expect(body.log.lines[1]).to.include({ task: 'sleepy', runId, ms: 120_000 });
        expect(body.log.dropped).to.equal(0);

        const shown = await runCli(['runs', runId], { DATABASE_URL: db.url, CRON_SECRET_KEY: SECRET });
        expect(shown.code, shown.stderr).to.equal(0);
        expect(shown.stdout).to.include('sleepy abandoned');
        expect(shown.stdout).to.match(
          /log \(2 lines\):\n {2}\S+ INFO run started .*\n {2}\S+ INFO going to sleep \{"ms":120000\}/,
        );
      } finally {
        child.kill('SIGKILL');
      }
    });
  });

  describe('from the command line', function () {
    this.timeout(60_000);
    const env = () => ({ DATABASE_URL: db.url, TASKS_DIR: OPERATOR_TASKS, CRON_SECRET_KEY: SECRET });

    it('pause refuses `run` with exit 75 and the reason, status shows it, resume lets it run; rerun and `runs <id>` show the run whole', async () => {
      const paused = await runCli(['pause', 'sleepy', '--reason', 'nightly backup', '--until', '2h'], env());
      expect(paused.code, paused.stderr).to.equal(0);
      expect(paused.stdout).to.match(/^sleepy is paused until \d{4}-.*Z: nightly backup/);
      const [row] = await query('select paused_by, reason from taskgate.task_pause');
      expect(row).to.deep.equal({ paused_by: 'cli', reason: 'nightly backup' });

      const refused = await runCli(['run', 'sleepy'], env());
      expect(refused.code).to.equal(75);
      expect(refused.stderr).to.match(/taskgate: sleepy is paused until .*: nightly backup/);
      expect(await runCount('sleepy')).to.equal(0);

      const status = await runCli(['status'], env());
      expect(status.stdout).to.match(/sleepy .* PAUSED until \d{4}-/);

      expect((await runCli(['pause', 'sleepy'], env())).code, 'a pause without --reason').to.equal(2);
      expect((await runCli(['pause', 'nope', '--reason', 'r'], env())).code).to.equal(2);

      const resumed = await runCli(['resume', 'sleepy', '--reason', 'backup done'], env());
      expect(resumed.stdout.trim()).to.equal('sleepy is resumed');
      const ran = await runCli(['run', 'sleepy', '--param', 'ms=1', '--json'], env());
      expect(ran.code, ran.stderr).to.equal(0);
      const first = JSON.parse(ran.stdout);

      const rerun = await runCli(['rerun', first.id, '--reason', 'check', '--json'], env());
      expect(rerun.code, rerun.stderr).to.equal(0);
      expect(JSON.parse(rerun.stdout)).to.include({
        rerunOf: first.id,
        rerunReason: 'check',
        trigger: 'cli',
      });

      const shown = await runCli(['runs', first.id], env());
      expect(shown.code, shown.stderr).to.equal(0);
      expect(shown.stdout).to.include(`sleepy succeeded`);
      expect(shown.stdout).to.include('params: {"ms":1}');
      expect(shown.stdout).to.match(/log \(2 lines\):\n {2}\S+ INFO run started/);
      expect(shown.stdout).to.match(/INFO going to sleep \{"ms":1\}/);
      const json = JSON.parse((await runCli(['runs', first.id, '--json'], env())).stdout);
      expect(json.run.id).to.equal(first.id);
      expect(json.log.lines).to.have.length(2);
      const missing = await runCli(['runs', '00000000-0000-4000-8000-000000000000'], env());
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.include('no run with id');
    });

    it('list shows a paused task as PAUSED until in NEXT RUN, and lists without pauses, saying so, when the database cannot be read', async () => {
      expect(
        (await runCli(['pause', 'sleepy', '--reason', 'nightly backup', '--until', '2h'], env())).code,
      ).to.equal(0);
      const listed = await runCli(['list'], env());
      expect(listed.code, listed.stderr).to.equal(0);
      expect(listed.stdout).to.match(/^sleepy +\S+ +.+ PAUSED until \d{4}-\S+Z +/m);
      expect(listed.stdout).to.match(/^chatty +- +.+ - +/m);
      const listedJson = JSON.parse((await runCli(['list', '--json'], env())).stdout);
      const sleepy = listedJson.find((t: { name: string }) => t.name === 'sleepy');
      expect(sleepy).to.include({ paused: true });
      expect(sleepy.pause).to.include({ reason: 'nightly backup', pausedBy: 'cli' });
      expect(sleepy).to.not.have.property('lastRun');
      const unreachable = await runCli(['list', '--json'], {
        ...env(),
        DATABASE_URL: 'postgres://taskgate@127.0.0.1:1/taskgate',
      });
      expect(unreachable.code, unreachable.stderr).to.equal(0);
      expect(unreachable.stderr).to.match(/^taskgate: pauses not shown, the database could not be read: /);
      const offline = JSON.parse(unreachable.stdout);
      expect(offline.map((t: { name: string }) => t.name)).to.include('sleepy');
      expect(offline[0]).to.not.have.property('paused');
    });

    it('pauses prints who paused and resumed a task, when, why and until when, newest first', async () => {
      expect(
        (await runCli(['pause', 'sleepy', '--reason', 'nightly backup', '--until', '2h'], env())).code,
      ).to.equal(0);
      expect((await runCli(['resume', 'sleepy', '--reason', 'backup done'], env())).code).to.equal(0);
      const pauses = await runCli(['pauses', 'sleepy'], env());
      expect(pauses.code, pauses.stderr).to.equal(0);
      const lines = pauses.stdout.trim().split('\n');
      expect(lines[0]).to.match(/^AT +ACTION +BY +UNTIL +REASON$/);
      expect(lines[1]).to.match(/^\d{4}-\S+Z +resumed +cli +- +backup done$/);
      expect(lines[2]).to.match(/^\d{4}-\S+Z +paused +cli +\d{4}-\S+Z +nightly backup$/);
      expect(lines).to.have.length(3);
      const pausesJson = JSON.parse(
        (await runCli(['pauses', 'sleepy', '--json', '--limit', '1'], env())).stdout,
      );
      expect(pausesJson.map((e: { action: string; by: string }) => [e.action, e.by])).to.deep.equal([
        ['resumed', 'cli'],
      ]);
      expect((await runCli(['pauses', 'chatty'], env())).stdout.trim()).to.equal('chatty was never paused');
      expect((await runCli(['pauses', 'sleepy', '--limit', '0'], env())).code).to.equal(2);
    });

    it('cancel stops a run started over HTTP and waits for it to be recorded cancelled', async () => {
      const runId = await startSleepy(60_000);
      const cancelled = await runCli(
        ['cancel', runId, '--reason', 'stuck on a lock', '--task', 'sleepy'],
        env(),
      );
      expect(cancelled.code, cancelled.stderr).to.equal(0);
      expect(cancelled.stdout).to.match(/^sleepy cancelled in \d+ ms/);
      const run = await settled(runId);
      expect(run).to.include({ status: 'cancelled' });
      expect(run.cancel).to.include({ by: 'cli', reason: 'stuck on a lock' });
      const again = await runCli(['cancel', runId], env());
      expect(again.code).to.equal(2);
      expect(again.stderr).to.include(`run ${runId} has already ended (cancelled)`);
    });
  });
});
