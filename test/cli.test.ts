import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import type { Runner } from '../src/core/runner.js';
import { EMBEDDED_DATA_DIR } from '../src/service.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { RUNNER_TASKS, TEST_SECRET, testRunner } from './support/runner.js';

describe('the taskgate command line', () => {
  let db: TestDatabase;
  let env: Record<string, string>;
  let runner: Runner;
  before(async () => {
    db = await createTestDatabase();
    env = { DATABASE_URL: db.url, CRON_SECRET_KEY: TEST_SECRET, TASKS_DIR: RUNNER_TASKS };
    runner = await testRunner(db);
  });
  after(async () => db.drop());

  it('list --json gives each task with its schedule in words and next run time', async () => {
    const { code, stdout } = await runCli(['list', '--json'], { TASKS_DIR: RUNNER_TASKS });
    expect(code).to.equal(0);
    const tasks = JSON.parse(stdout);
    const echo = tasks.find((t: { name: string }) => t.name === 'echo');
    expect(echo).to.include({
      schedule: '0 12 * * 1',
      description: 'Returns its params, its clock and whether it was a dry run.',
    });
    expect(echo.scheduleText).to.match(/12:00.*Monday/);
    expect(new Date(echo.nextRunAt).getUTCDay()).to.equal(1);
    expect(tasks.find((t: { name: string }) => t.name === 'failing')).to.include({
      schedule: null,
      nextRunAt: null,
    });
  });

  it('list prints a table for people', async () => {
    const { code, stdout } = await runCli(['list'], { TASKS_DIR: RUNNER_TASKS });
    expect(code).to.equal(0);
    expect(stdout).to.match(/^TASK\s+SCHEDULE/);
    expect(stdout).to.match(/\nsleeper\s+\*\/5 \* \* \* \*\s+Every 5 minutes/);
  });

  it('run exits 0 and prints the run as JSON, params from --param and --params', async () => {
    const { code, stdout } = await runCli(
      ['run', 'echo', '--params', '{"label":"from-json"}', '--param', 'count=3', '--json'],
      env,
    );
    expect(code).to.equal(0);
    const run = JSON.parse(stdout);
    expect(run).to.include({ task: 'echo', status: 'succeeded', trigger: 'cli' });
    expect(run.result).to.include({ count: 3, label: 'from-json', dryRun: false });
  });

  it('run --dry-run tells the task to change nothing, and says so to people', async () => {
    const { code, stdout } = await runCli(['run', 'echo', '--dry-run'], env);
    expect(code).to.equal(0);
    expect(stdout).to.match(
      /^echo succeeded in \d+ ms \(dry run\) — run [0-9a-f-]{36}\nresult: .*"dryRun":true/,
    );
  });

  it('run exits 1 with the reason when the task fails', async () => {
    const { code, stderr } = await runCli(['run', 'failing'], env);
    expect(code).to.equal(1);
    expect(stderr).to.match(/taskgate: failing failed: the failing task failed on purpose/);
  });

  it('run exits 2 for an unknown task', async () => {
    const { code, stdout } = await runCli(['run', 'nope', '--json'], env);
    expect(code).to.equal(2);
    expect(JSON.parse(stdout)).to.include({ status: 'error', code: 'TASK_NOT_FOUND' });
  });

  it('run exits 2 for bad params and lists the valid keys', async () => {
    const { code, stderr } = await runCli(['run', 'echo', '--param', 'colour=red'], env);
    expect(code).to.equal(2);
    expect(stderr).to.match(/colour/);
    expect(stderr).to.match(/valid params: count, label/);
  });

  it('run exits 75 when the task is already running elsewhere', async () => {
    const { run } = await runner.start({ task: 'sleeper', params: { ms: 20_000 }, trigger: 'http' });
    try {
      const { code, stdout } = await runCli(['run', 'sleeper', '--json'], env);
      expect(code).to.equal(75);
      expect(JSON.parse(stdout)).to.include({ code: 'TASK_BUSY', runId: run.id });
    } finally {
      await runner.close(0);
    }
  });

  it('exits 2 with help on a usage error', async () => {
    const missing = await runCli(['run'], env);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.match(/Not enough non-option arguments/);
    const unknown = await runCli(['frobnicate'], env);
    expect(unknown.code).to.equal(2);
    expect(unknown.stderr).to.match(/Unknown argument: frobnicate/);
    const badLimit = await runCli(['runs', '--limit', '0'], env);
    expect(badLimit.code).to.equal(2);
    expect(badLimit.stderr).to.match(/limit must be a whole number from 1 to 1000/);
  });

  it('--help on a command explains its options and exits 0', async () => {
    const { code, stdout } = await runCli(['run', '--help']);
    expect(code).to.equal(0);
    expect(stdout)
      .to.match(/--dry-run/)
      .and.match(/--param/);
  });

  it('runs --json shows the history newest first, filtered by task', async () => {
    const { code, stdout } = await runCli(['runs', '--task', 'echo', '--limit', '2', '--json'], env);
    expect(code).to.equal(0);
    const runs = JSON.parse(stdout);
    expect(runs).to.have.length(2);
    expect(runs.every((r: { task: string }) => r.task === 'echo')).to.equal(true);
    expect(Date.parse(runs[0].startedAt)).to.be.at.least(Date.parse(runs[1].startedAt));
  });

  it('run without DATABASE_URL uses the embedded PostgreSQL, exits 0 and leaves no server of its own running', async () => {
    // A server of `npm start` may already run on that folder: the CLI joins it and must leave it as it was.
    const pidFile = () => readFile(path.join(EMBEDDED_DATA_DIR, 'postmaster.pid'), 'utf8').catch(() => null);
    const before = await pidFile();
    const { code, stdout } = await runCli(['run', 'echo', '--json'], { TASKS_DIR: RUNNER_TASKS });
    expect(code).to.equal(0);
    expect(JSON.parse(stdout)).to.include({ task: 'echo', status: 'succeeded' });
    expect(await pidFile()).to.equal(before);
  });

  it('migrate reports the applied migrations and exits 0', async () => {
    const { code, stdout } = await runCli(['migrate', '--json'], env);
    expect(code).to.equal(0);
    expect(JSON.parse(stdout).migrations).to.include('Migration0001TaskRun');
  });
});
