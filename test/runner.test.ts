import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import type { Runner } from '../src/core/runner.js';
import { checkpointRunLogs, findRun, findRunLog, type RunRecord } from '../src/core/runs.js';
import { TaskgateError } from '../src/errors.js';
import { createTestDatabase, type TestDatabase, testDb } from './support/database.js';
import { eventually } from './support/eventually.js';
import { captureLogger, TEST_SECRET, testRunner } from './support/runner.js';

async function rejection(promise: Promise<unknown>): Promise<TaskgateError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(TaskgateError);
    return error as TaskgateError;
  }
  throw new Error('expected a TaskgateError');
}

const overlaps = (a: RunRecord, b: RunRecord) =>
  Date.parse(a.startedAt) < Date.parse(b.finishedAt!) && Date.parse(b.startedAt) < Date.parse(a.finishedAt!);

describe('the runner', () => {
  let db: TestDatabase;
  let runner: Runner;
  before(async () => {
    db = await createTestDatabase();
    runner = await testRunner(db);
  });
  after(async () => db.drop());

  it('records a successful run with its params (defaults applied), trigger, result and duration', async () => {
    const run = await runner.run({ task: 'echo', params: { count: 3 }, trigger: 'cli' });
    expect(run).to.include({ task: 'echo', trigger: 'cli', status: 'succeeded', dryRun: false, error: null });
    expect(run.params).to.deep.equal({ count: 3, label: 'none' });
    expect(run.result).to.deep.include({ count: 3, label: 'none', dryRun: false, now: run.startedAt });
    expect(run.durationMs).to.be.a('number').at.least(0);
    expect(await findRun(db.sql, run.id)).to.deep.equal(run);
  });

  it('passes dryRun to the task and records it', async () => {
    const run = await runner.run({ task: 'echo', dryRun: true, trigger: 'http' });
    expect(run.dryRun).to.equal(true);
    expect(run.result).to.deep.include({ dryRun: true });
  });

  it('refuses a second run of a running task as TASK_BUSY with the running run id, from the same process', async () => {
    const { run } = await runner.start({ task: 'sleeper', params: { ms: 400 }, trigger: 'cli' });
    const busy = await rejection(runner.start({ task: 'sleeper', trigger: 'cli' }));
    expect(busy.code).to.equal('TASK_BUSY');
    expect(busy.details.runId).to.equal(run.id);
    expect((await runner.wait(run.id)).status).to.equal('succeeded');
  });

  it('refuses a second run of a running task from another connection pool (another replica)', async () => {
    const otherPool = testDb(db.url);
    try {
      const other = await testRunner(db, { sql: otherPool });
      const { run } = await runner.start({ task: 'sleeper', params: { ms: 400 }, trigger: 'cli' });
      const busy = await rejection(other.start({ task: 'sleeper', trigger: 'http' }));
      expect(busy.code).to.equal('TASK_BUSY');
      expect(busy.details.runId).to.equal(run.id);
      await runner.wait(run.id);
      // Once the first run is over, the other replica may run the task.
      expect((await other.run({ task: 'sleeper', params: { ms: 1 }, trigger: 'http' })).status).to.equal(
        'succeeded',
      );
    } finally {
      await otherPool.close();
    }
  });

  it('runs two different tasks side by side', async () => {
    const [a, b] = await Promise.all([
      runner.run({ task: 'sleeper', params: { ms: 300 }, trigger: 'cli' }),
      runner.run({ task: 'other_sleeper', params: { ms: 300 }, trigger: 'cli' }),
    ]);
    expect([a.status, b.status]).to.deep.equal(['succeeded', 'succeeded']);
    expect(overlaps(a, b), 'the two runs overlap in time').to.equal(true);
  });

  it('refuses unknown params and wrong types as INVALID_PARAMS naming the fields and the valid keys', async () => {
    const unknown = await rejection(
      runner.start({ task: 'echo', params: { count: 1, colour: 'red' }, trigger: 'cli' }),
    );
    expect(unknown.code).to.equal('INVALID_PARAMS');
    expect(unknown.message).to.match(/colour/);
    expect(unknown.details.validKeys).to.deep.equal(['count', 'label']);

    const wrong = await rejection(runner.start({ task: 'echo', params: { count: 'three' }, trigger: 'cli' }));
    expect(wrong.code).to.equal('INVALID_PARAMS');
    expect((wrong.details.errors as { field: string }[]).map((e) => e.field)).to.deep.equal(['count']);
    expect(wrong.message).to.match(/^invalid params for echo: count: /);

    const notObject = await rejection(runner.start({ task: 'echo', params: [1, 2], trigger: 'cli' }));
    expect(notObject.code).to.equal('INVALID_PARAMS');
  });

  it('answers TASK_NOT_FOUND for a task that is not registered, recording nothing', async () => {
    expect((await rejection(runner.start({ task: 'nope', trigger: 'cli' }))).code).to.equal('TASK_NOT_FOUND');
  });

  it('records a failing task as failed with its error message', async () => {
    const run = await runner.run({ task: 'failing', trigger: 'cli' });
    expect(run).to.include({ status: 'failed', error: 'the failing task failed on purpose', result: null });
  });

  it('aborts a run that outlives its timeout and records it as interrupted', async () => {
    const run = await runner.run({ task: 'slow', trigger: 'cli' });
    expect(run.status).to.equal('interrupted');
    expect(run.error).to.equal('timed out after 200 ms');
    expect(run.durationMs).to.be.below(5_000);
  });

  it('gives back the first run for a repeated idempotency key, while it runs and after it finished', async () => {
    const first = await runner.start({
      task: 'sleeper',
      params: { ms: 300 },
      trigger: 'http',
      idempotencyKey: 'k-1',
    });
    const again = { task: 'sleeper', params: { ms: 300 }, trigger: 'http', idempotencyKey: 'k-1' };
    const whileRunning = await runner.start(again);
    expect(whileRunning).to.deep.include({ replayed: true });
    expect(whileRunning.run.id).to.equal(first.run.id);
    const finished = await runner.wait(first.run.id);
    const after = await runner.start(again);
    expect(after.replayed).to.equal(true);
    expect(after.run).to.deep.equal(finished);
    // The key belongs to its task: another task may use the same key.
    const echo = await runner.start({ task: 'echo', trigger: 'http', idempotencyKey: 'k-1' });
    expect(echo.replayed).to.equal(false);
    expect((await runner.wait(echo.run.id)).status).to.equal('succeeded');
  });

  it('logs one line when a run starts and one when it ends, with task, runId, status and durationMs', async () => {
    const capture = captureLogger();
    const logged = await testRunner(db, { logger: capture.logger });
    const run = await logged.run({ task: 'echo', trigger: 'cli' });
    const lines = capture.lines().filter((l) => l.runId === run.id);
    expect(lines).to.have.length(2);
    expect(lines[0]).to.include({ task: 'echo', runId: run.id, status: 'running', msg: 'run started' });
    expect(lines[1]).to.include({
      task: 'echo',
      runId: run.id,
      status: 'succeeded',
      durationMs: run.durationMs,
    });
  });

  it('tells its listeners of every start and end', async () => {
    const events: string[] = [];
    const listening = await testRunner(db, {
      listeners: [
        {
          onStart: (r) => void events.push(`start ${r.status}`),
          onFinish: (r) => void events.push(`end ${r.status}`),
        },
      ],
    });
    await listening.run({ task: 'failing', trigger: 'cli' });
    expect(events).to.deep.equal(['start running', 'end failed']);
  });

  it('on close, lets runs finish within the grace period and interrupts those still running after it', async () => {
    const closing = await testRunner(db);
    const short = await closing.start({ task: 'sleeper', params: { ms: 100 }, trigger: 'cli' });
    const long = await closing.start({ task: 'other_sleeper', params: { ms: 60_000 }, trigger: 'cli' });
    await closing.close(500);
    expect((await findRun(db.sql, short.run.id))?.status).to.equal('succeeded');
    const interrupted = await findRun(db.sql, long.run.id);
    expect(interrupted).to.include({ status: 'interrupted', error: 'interrupted by shutdown' });
    expect((await rejection(closing.start({ task: 'echo', trigger: 'cli' }))).code).to.equal('SHUTTING_DOWN');
  });

  it('marks the run of a process killed with SIGKILL as abandoned, and the task runs again', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('./support/child-run.ts', import.meta.url))],
      {
        env: {
          PATH: process.env.PATH,
          NODE_ENV: 'test',
          DATABASE_URL: db.url,
          CRON_SECRET_KEY: TEST_SECRET,
          RUN_LEASE_MS: '1500',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const [chunk] = await once(child.stdout, 'data');
    const ghostId = String(chunk).trim();
    expect((await findRun(db.sql, ghostId))?.status).to.equal('running');
    expect((await rejection(runner.start({ task: 'sleeper', trigger: 'cli' }))).code).to.equal('TASK_BUSY');

    child.kill('SIGKILL');
    await once(child, 'exit');
    // Nobody renews the dead process's lease: it expires (RUN_LEASE_MS after its last renewal).
    const again = await eventually(
      () =>
        runner
          .run({ task: 'sleeper', params: { ms: 1 }, trigger: 'cli' })
          .catch((error: TaskgateError) => (error.code === 'TASK_BUSY' ? null : Promise.reject(error))),
      10_000,
    );
    expect(again.status).to.equal('succeeded');
    const ghost = await findRun(db.sql, ghostId);
    expect(ghost).to.include({ status: 'abandoned' });
    expect(ghost?.finishedAt).to.be.a('string');
  });

  it('saves what a run logged with its lease renewals while it runs, and the log whole once at its end', async () => {
    // A 1 s lease is renewed every 333 ms: the 1.5 s run is checkpointed before it ends.
    const renewing = await testRunner(db, { env: { RUN_LEASE_MS: '1000' } });
    const { run } = await renewing.start({ task: 'sleeper', params: { ms: 1_500 }, trigger: 'cli' });
    const saved = await eventually(() => findRunLog(db.sql, run.id), 5_000);
    expect((await findRun(db.sql, run.id))?.status).to.equal('running');
    expect(saved.lines.map((l) => l.msg)).to.deep.equal(['run started']);
    expect((await renewing.wait(run.id)).status).to.equal('succeeded');
    const kept = await findRunLog(db.sql, run.id);
    expect(kept?.lines.map((l) => l.msg)).to.deep.equal(['run started']);
    expect(kept?.bytes).to.equal(saved.bytes);
    // A checkpoint that arrives after the end writes nothing over it.
    await checkpointRunLogs(db.sql, [{ runId: run.id, log: { lines: [], bytes: 0, dropped: 0 } }]);
    expect(await findRunLog(db.sql, run.id)).to.deep.equal(kept);
  });

  it('never lets an older checkpoint replace a newer one, and keeps the lines when only the dropped count grew', async () => {
    const [row] = (
      await db.sql.query(
        `insert into taskgate.task_run (task, trigger, status) values ('other_sleeper', 'cli', 'running') returning id`,
      )
    ).rows;
    const runId = String(row!.id);
    try {
      const a = { msg: 'a' };
      const b = { msg: 'b' };
      await checkpointRunLogs(db.sql, [{ runId, log: { lines: [a, b], bytes: 40, dropped: 0 } }]);
      await checkpointRunLogs(db.sql, [{ runId, log: { lines: [a], bytes: 20, dropped: 0 } }]);
      expect(await findRunLog(db.sql, runId)).to.deep.equal({ lines: [a, b], bytes: 40, dropped: 0 });
      await checkpointRunLogs(db.sql, [{ runId, log: { bytes: 40, dropped: 7 } }]);
      expect(await findRunLog(db.sql, runId)).to.deep.equal({ lines: [a, b], bytes: 40, dropped: 7 });
    } finally {
      await db.sql.query('delete from taskgate.task_run where id = $1', [runId]);
    }
  });

  it('sweeps runs abandoned by dead processes without touching runs that are alive', async () => {
    const { run: live } = await runner.start({ task: 'sleeper', params: { ms: 500 }, trigger: 'cli' });
    await db.orm.em
      .getConnection()
      .execute(
        `insert into taskgate.task_run (task, trigger, status) values ('other_sleeper', 'cli', 'running')`,
      );
    const swept = await runner.sweepAbandoned();
    expect(swept).to.have.length(1);
    expect((await findRun(db.sql, swept[0]!))?.status).to.equal('abandoned');
    expect((await findRun(db.sql, live.id))?.status).to.equal('running');
    expect((await runner.wait(live.id)).status).to.equal('succeeded');
  });
});
