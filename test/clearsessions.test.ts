import { expect } from 'chai';
import { createLogger } from '../src/logger.js';
import clearTask from '../tasks/clearsessions_daily.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { TEST_SECRET } from './support/runner.js';

const CUTOFF = new Date('2031-03-04T05:06:07.890Z');
const silent = createLogger({ level: 'silent', pretty: false });

/** The table exactly as Django's migrate makes it for django.contrib.sessions (PostgreSQL backend). */
const djangoSessionDdl = (table: string) => `
  create table ${table} (
    session_key varchar(40) not null primary key,
    session_data text not null,
    expire_date timestamp with time zone not null
  );
  create index ${table.replace(/\W/g, '_')}_expire_date_a5c62663 on ${table} (expire_date);`;

describe('clearsessions_daily', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
    await db.sql.query('drop table if exists django_session');
    await db.sql.query(djangoSessionDdl('django_session'));
    await db.sql.query('create schema app');
  });
  after(async () => db.drop());
  beforeEach(async () => db.sql.query('truncate django_session'));

  /** Inserts sessions expiring at the given intervals from the cutoff ('-1 second', '0 seconds'...). */
  async function insertSessions(expires: string[], table = 'django_session'): Promise<void> {
    for (const [i, interval] of expires.entries()) {
      await db.sql.query(
        `insert into ${table} (session_key, session_data, expire_date) values ($1, 'e30:data', $2::timestamptz + $3::interval)`,
        [`key${String(i).padStart(36, '0')}`, CUTOFF.toISOString(), interval],
      );
    }
  }
  const remaining = async (table = 'django_session') =>
    (await db.sql.query(`select expire_date from ${table} order by expire_date`)).rows.map((r) =>
      (r.expire_date as Date).toISOString(),
    );

  function runTask(
    options: { batchSize?: number; dryRun?: boolean; table?: string; signal?: AbortSignal } = {},
  ) {
    return clearTask.run({
      params: { batchSize: options.batchSize ?? 5_000 },
      db: db.sql,
      logger: silent,
      now: CUTOFF,
      signal: options.signal ?? new AbortController().signal,
      dryRun: options.dryRun ?? false,
      runId: 'test-run',
      settings: { DJANGO_SESSION_TABLE: options.table ?? 'django_session' },
    });
  }

  it('deletes exactly the sessions that expired strictly before the run started, as clearsessions does', async () => {
    await insertSessions([
      '-30 days',
      '-1 second',
      '-1 microsecond',
      '0 seconds',
      '1 microsecond',
      '14 days',
    ]);
    const result = await runTask();
    expect(result).to.include({ deleted: 3, complete: true, cutoff: CUTOFF.toISOString() });
    // The session expiring at the very instant of the cutoff is still valid for Django (expire_date__lt).
    const kept = await db.sql.query<{ n: number; at_cutoff: number }>(
      `select count(*)::int as n, (count(*) filter (where expire_date = $1::timestamptz))::int as at_cutoff
         from django_session where expire_date >= $1::timestamptz`,
      [CUTOFF.toISOString()],
    );
    expect(kept.rows[0]).to.deep.equal({ n: 3, at_cutoff: 1 });
    expect((await remaining()).length).to.equal(3);
  });

  it('deletes in batches of batchSize, all of the expired ones, counting them', async () => {
    await db.sql.query(
      `insert into django_session
       select md5(g::text), 'e30:data', $1::timestamptz - (g || ' seconds')::interval from generate_series(1, 2345) g`,
      [CUTOFF.toISOString()],
    );
    await insertSessions(['1 day']);
    const result = await runTask({ batchSize: 500 });
    expect(result).to.include({ deleted: 2_345, batches: 5, complete: true });
    expect((await remaining()).length).to.equal(1);
  });

  it('on a dry run counts what it would delete and deletes nothing', async () => {
    await insertSessions(['-2 days', '-1 second', '0 seconds', '1 day']);
    const result = await runTask({ dryRun: true });
    expect(result).to.include({ dryRun: true, wouldDelete: 2, deleted: 0 });
    expect((await remaining()).length).to.equal(4);
  });

  it('stops between batches when cancelled, reporting an incomplete run', async () => {
    await insertSessions(['-3 seconds', '-2 seconds', '-1 second']);
    const controller = new AbortController();
    controller.abort();
    const result = await runTask({ batchSize: 1, signal: controller.signal });
    expect(result).to.include({ deleted: 0, complete: false });
    expect((await remaining()).length).to.equal(3);
  });

  it('works on a renamed table given in DJANGO_SESSION_TABLE, and touches no other', async () => {
    await db.sql.query(djangoSessionDdl('my_sessions'));
    await insertSessions(['-1 day', '1 day'], 'my_sessions');
    await insertSessions(['-1 day']);
    const result = await runTask({ table: 'my_sessions' });
    expect(result).to.include({ deleted: 1 });
    expect((await remaining('my_sessions')).length).to.equal(1);
    expect((await remaining()).length).to.equal(1);
  });

  it('fails a run on a missing table with a message naming it, and never creates it', async () => {
    let error: Error | undefined;
    await runTask({ table: 'no_such_sessions' }).catch((e: Error) => {
      error = e;
    });
    expect(error?.message).to.match(
      /^table "no_such_sessions" is not in database ".+": .*DJANGO_SESSION_TABLE/,
    );
    const found = await db.sql.query(`select to_regclass('no_such_sessions') as t`);
    expect(found.rows[0]!.t).to.equal(null);
  });

  it('runs from the CLI, records its counts, and doctor reports the table and a missing one', async () => {
    await db.sql.query(
      `insert into django_session values ('a', 'x', now() - interval '1 hour'), ('b', 'x', now() + interval '1 hour')`,
    );
    const env = { DATABASE_URL: db.url, CRON_SECRET_KEY: TEST_SECRET };
    const run = await runCli(['run', 'clearsessions_daily', '--json'], env);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/"deleted":\s*1/);
    const doctor = await runCli(['doctor'], env);
    expect(doctor.stdout).to.match(
      /clearsessions_daily: table.*"django_session" present: 1 sessions, 0 expired/,
    );
    const missing = await runCli(['doctor'], { ...env, DJANGO_SESSION_TABLE: 'gone_sessions' });
    expect(missing.code).to.equal(1);
    expect(missing.stdout + missing.stderr).to.match(
      /clearsessions_daily: table.*"gone_sessions" is not in database/,
    );
  });
});
