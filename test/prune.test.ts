import { expect } from 'chai';
import { loadRegistry } from '../src/core/registry.js';
import type { Runner } from '../src/core/runner.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testRunner } from './support/runner.js';

describe('prunetaskruns_weekly', () => {
  let db: TestDatabase;
  let runner: Runner;
  const remaining = async () =>
    (
      await db.orm.em
        .getConnection()
        .execute<{ task: string; status: string }[]>(
          'select task, status from taskgate.task_run where task <> ? order by task',
          ['prunetaskruns_weekly'],
        )
    ).map((r) => `${r.task}:${r.status}`);

  beforeEach(async () => {
    db = await createTestDatabase();
    runner = await testRunner(db, { registry: await loadRegistry() });
    // 120 days old (finished), 120 days old (still marked running), 10 days old (finished).
    await db.orm.em.getConnection().execute(
      `insert into taskgate.task_run (task, trigger, status, started_at)
       select 'old_' || g, 'cli', 'succeeded', now() - interval '120 days' from generate_series(1, 7) g
       union all select 'old_running', 'cli', 'running', now() - interval '120 days'
       union all select 'recent', 'cli', 'failed', now() - interval '10 days'`,
    );
  });
  afterEach(async () => db.drop());

  it('deletes finished runs older than the retention period in batches, keeping recent and running ones', async () => {
    const run = await runner.run({ task: 'prunetaskruns_weekly', params: { batchSize: 3 }, trigger: 'cli' });
    expect(run.status).to.equal('succeeded');
    expect(run.result).to.include({ deleted: 7, batches: 3 });
    expect(await remaining()).to.deep.equal(['old_running:running', 'recent:failed']);
  });

  it('honours a shorter retention period', async () => {
    const run = await runner.run({
      task: 'prunetaskruns_weekly',
      params: { retentionDays: 5 },
      trigger: 'cli',
    });
    expect(run.result).to.include({ deleted: 8 });
    expect(await remaining()).to.deep.equal(['old_running:running']);
  });

  it('counts and deletes nothing on a dry run', async () => {
    const run = await runner.run({ task: 'prunetaskruns_weekly', dryRun: true, trigger: 'cli' });
    expect(run.result).to.include({ wouldDelete: 7, deleted: 0 });
    expect(await remaining()).to.have.length(9);
  });
});
