import { get } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { type Served, startServe } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { HTTP_TASKS_DIR, SECRET } from './support/http.js';

describe('taskgate serve: shutdown', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  let served: Served | undefined;

  before(async () => {
    db = await createTestDatabase();
  });
  afterEach(() => {
    if (served && served.child.exitCode === null) served.child.kill('SIGKILL');
  });
  after(async () => db.drop());

  /** Starts the real `taskgate serve` on the test database and the fixture tasks. */
  async function serve(env: Record<string, string>): Promise<Served> {
    served = await startServe({
      DATABASE_URL: db.url,
      CRON_SECRET_KEY: SECRET,
      TASKS_DIR: HTTP_TASKS_DIR,
      ...env,
    });
    return served;
  }

  /** Waits until a run of `task` is recorded as running, and returns its id. */
  async function runningRun(task: string): Promise<string> {
    for (let i = 0; i < 200; i++) {
      const rows = await db.orm.em
        .getConnection()
        .execute(`select id from taskgate.task_run where task = ? and status = 'running'`, [task]);
      if (rows[0]) return String(rows[0].id);
      await delay(25);
    }
    throw new Error(`no running run of ${task}`);
  }

  async function statusOf(runId: string): Promise<string> {
    const rows = await db.orm.em
      .getConnection()
      .execute('select status from taskgate.task_run where id = ?', [runId]);
    return String(rows[0]?.status);
  }

  /** Whether a new connection (not a pooled keep-alive one) gets an answer. */
  const connects = (base: string) =>
    new Promise<boolean>((resolve) => {
      const req = get(`${base}/healthz`, { agent: false }, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
    });

  const trigger = (base: string, task: string, body: unknown) =>
    fetch(`${base}/cron/${task}`, {
      method: 'POST',
      headers: { 'X-Cron-Secret': SECRET, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('on SIGTERM stops accepting, lets a run within the grace period finish and answer, then exits 0', async () => {
    const { child, base, exited, output } = await serve({ SHUTDOWN_GRACE_MS: '10000' });
    const answer = trigger(base, 'sleep', { ms: 1_500 });
    const runId = await runningRun('sleep');
    child.kill('SIGTERM');
    let refused = false;
    for (let i = 0; i < 40 && !refused; i++) {
      refused = !(await connects(base));
      if (!refused) await delay(50);
    }
    expect(refused, 'new connections are refused after SIGTERM').to.equal(true);
    expect(await statusOf(runId)).to.equal('running');
    const res = await answer;
    expect(res.status).to.equal(200);
    expect(await res.json()).to.include({ status: 'success', runId });
    expect(await exited).to.deep.equal({ code: 0, signal: null });
    expect(await statusOf(runId)).to.equal('succeeded');
    expect(output()).to.contain('"msg":"stopped"');
  });

  it('on SIGTERM interrupts a run that outlives the grace period, answers it as interrupted, and exits 0', async () => {
    const { child, base, exited } = await serve({ SHUTDOWN_GRACE_MS: '300' });
    const answer = trigger(base, 'sleep', { ms: 60_000 });
    const runId = await runningRun('sleep');
    const signalled = Date.now();
    child.kill('SIGTERM');
    const res = await answer;
    expect(res.status).to.equal(500);
    expect(await res.json()).to.include({ code: 'TASK_INTERRUPTED', runId, runStatus: 'interrupted' });
    expect(await exited).to.deep.equal({ code: 0, signal: null });
    expect(Date.now() - signalled).to.be.below(10_000);
    expect(await statusOf(runId)).to.equal('interrupted');
  });
});
