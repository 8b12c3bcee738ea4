import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { migrationsList } from '../src/db/migrations/index.js';
import { pendingMigrations } from '../src/db/migrations/pending.js';
import { migrate } from '../src/db/orm.js';
import flushTask from '../tasks/flushexpiredtokens_daily.js';
import { describeTable } from './support/catalog.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

const DJANGO_DDL = new URL('./fixtures/django-token-tables.sql', import.meta.url);
const TOKEN_TABLES = ['token_blacklist_outstandingtoken', 'token_blacklist_blacklistedtoken'];

/** What `npm start` does to its embedded database: the flush task's simplejwt tables. */
async function prepareDevDatabase(db: TestDatabase): Promise<void> {
  await flushTask.prepareDevDatabase!(db.sql);
}

describe('migrations', () => {
  let db: TestDatabase;
  afterEach(async () => db?.drop());

  it("create only taskgate's own tables, in the taskgate schema, on a fresh database", async () => {
    db = await createTestDatabase({ migrated: false });
    expect(await migrate(db.orm)).to.deep.equal([
      'Migration0001TaskRun',
      'Migration0002Signatures',
      'Migration0003Incidents',
      'Migration0004Leases',
      'Migration0005OperatorControls',
      'Migration0006PauseEvents',
      'Migration0007Slots',
    ]);
    const tables = await db.orm.em.getConnection().execute(
      `select table_schema || '.' || table_name as t from information_schema.tables
          where table_schema not in ('pg_catalog', 'information_schema') order by 1`,
    );
    expect(tables.map((r) => r.t)).to.deep.equal([
      'taskgate.incident',
      'taskgate.mikro_orm_migrations',
      'taskgate.run_log',
      'taskgate.seen_signature',
      'taskgate.task_lease',
      'taskgate.task_pause',
      'taskgate.task_pause_event',
      'taskgate.task_run',
    ]);
  });

  it("give the development database token tables with Django's exact columns, constraints and indexes", async () => {
    const django = await createTestDatabase({ migrated: false });
    db = await createTestDatabase({ migrated: false });
    try {
      await django.orm.em.getConnection().execute(await readFile(DJANGO_DDL, 'utf8'));
      // The user foreign key is made only when auth_user exists: give it one to compare everything.
      await db.orm.em.getConnection().execute('create table auth_user (id integer primary key)');
      await migrate(db.orm);
      await prepareDevDatabase(db);
      for (const table of TOKEN_TABLES) {
        expect(await describeTable(db.orm, table), table).to.deep.equal(
          await describeTable(django.orm, table),
        );
      }
    } finally {
      await django.drop();
    }
  });

  it('change nothing in token tables that Django already created', async () => {
    db = await createTestDatabase({ migrated: false });
    const connection = db.orm.em.getConnection();
    await connection.execute(await readFile(DJANGO_DDL, 'utf8'));
    await connection.execute(
      `insert into token_blacklist_outstandingtoken (token, created_at, expires_at, user_id, jti)
       values ('t', now(), now() + interval '1 day', null, 'jti-1')`,
    );
    const before = await Promise.all(TOKEN_TABLES.map((t) => describeTable(db.orm, t)));
    await migrate(db.orm);
    await prepareDevDatabase(db);
    const after = await Promise.all(TOKEN_TABLES.map((t) => describeTable(db.orm, t)));
    expect(after).to.deep.equal(before);
    const rows = await connection.execute<{ n: number }[]>(
      'select count(*)::int as n from token_blacklist_outstandingtoken',
    );
    expect(rows[0]?.n).to.equal(1);
  });

  it('carry on from a database whose first migration also made the token tables, keeping them', async () => {
    db = await createTestDatabase({ migrated: false });
    // What an earlier Migration0001 left: taskgate's first table, and simplejwt's with a token.
    await db.orm.getMigrator().up({ to: 'Migration0001TaskRun' });
    await prepareDevDatabase(db);
    const connection = db.orm.em.getConnection();
    await connection.execute(
      `insert into token_blacklist_outstandingtoken (token, expires_at, jti) values ('t', now(), 'jti-1')`,
    );
    const before = await Promise.all(TOKEN_TABLES.map((t) => describeTable(db.orm, t)));
    const later = migrationsList.slice(1).map((m) => m.name);
    expect(later).to.include('Migration0002Signatures');
    expect(await pendingMigrations(db.sql)).to.deep.equal(later);
    expect(await migrate(db.orm)).to.deep.equal(later);
    expect(await pendingMigrations(db.sql)).to.deep.equal([]);
    expect(await Promise.all(TOKEN_TABLES.map((t) => describeTable(db.orm, t)))).to.deep.equal(before);
    const rows = await connection.execute<{ n: number }[]>(
      'select count(*)::int as n from token_blacklist_outstandingtoken',
    );
    expect(rows[0]?.n).to.equal(1);
  });

  it('add the pause history and take it away again: task_pause_event, its index, and the pauses kept before it', async () => {
    db = await createTestDatabase({ migrated: false });
    const migrator = db.orm.getMigrator();
    await migrator.up({ to: 'Migration0005OperatorControls' });
    // What a database paused before the history was kept holds: a task's last pause and resume.
    await db.sql.query(
      `insert into taskgate.task_pause (task, reason, paused_by, paused_at, until, resumed_at, resumed_by, resume_reason)
       values ('a', 'backup', 'cli', '2030-01-01T00:00:00Z', null, '2030-01-01T01:00:00Z', 'http', 'done'),
              ('b', 'upgrade', 'http', '2030-01-02T00:00:00Z', '2030-01-03T00:00:00Z', null, null, null)`,
    );
    expect(await migrate(db.orm)).to.deep.equal(['Migration0006PauseEvents', 'Migration0007Slots']);
    const events = await db.sql.query(
      `select task, action, actor, reason, until, at from taskgate.task_pause_event order by task, at`,
    );
    expect(events.rows).to.deep.equal([
      {
        task: 'a',
        action: 'paused',
        actor: 'cli',
        reason: 'backup',
        until: null,
        at: new Date('2030-01-01T00:00:00Z'),
      },
      {
        task: 'a',
        action: 'resumed',
        actor: 'http',
        reason: 'done',
        until: null,
        at: new Date('2030-01-01T01:00:00Z'),
      },
      {
        task: 'b',
        action: 'paused',
        actor: 'http',
        reason: 'upgrade',
        until: new Date('2030-01-03T00:00:00Z'),
        at: new Date('2030-01-02T00:00:00Z'),
      },
    ]);
    const index = await db.sql.query(
      `select indexdef from pg_indexes where schemaname = 'taskgate' and indexname = 'task_pause_event_task_at_index'`,
    );
    expect(index.rows[0]?.indexdef).to.match(/\(task, at DESC\)$/);
    const refused = await db.sql
      .query(`insert into taskgate.task_pause_event (task, action, actor) values ('a', 'stopped', 'cli')`)
      .then(
        () => null,
        (error: { code?: string }) => error.code,
      );
    expect(refused, 'an action other than paused or resumed').to.equal('23514');

    expect((await migrator.down()).map((m) => m.name)).to.deep.equal(['Migration0007Slots']);
    expect((await migrator.down()).map((m) => m.name)).to.deep.equal(['Migration0006PauseEvents']);
    const left = await db.sql.query(`select to_regclass('taskgate.task_pause_event') as t`);
    expect(left.rows[0]?.t).to.equal(null);
    expect(await pendingMigrations(db.sql)).to.deep.equal(['Migration0006PauseEvents', 'Migration0007Slots']);
    const pauses = await db.sql.query('select count(*)::int as n from taskgate.task_pause');
    expect(pauses.rows[0]?.n, 'task_pause is left as it was').to.equal(2);
    expect(await migrate(db.orm)).to.deep.equal(['Migration0006PauseEvents', 'Migration0007Slots']);
    const again = await db.sql.query('select count(*)::int as n from taskgate.task_pause_event');
    expect(again.rows[0]?.n).to.equal(3);
  });

  it('taskgate migrate says which it applied, and then that there was nothing to apply', async () => {
    db = await createTestDatabase({ migrated: false });
    const env = { NODE_ENV: 'production', DATABASE_URL: db.url };
    const names = migrationsList.map((m) => m.name);
    const first = await runCli(['migrate'], env);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.equal(
      `applied ${names.length} migrations: ${names.join(', ')}; the database is up to date (${names.length} in all)\n`,
    );
    const again = await runCli(['migrate'], env);
    expect(again.stdout).to.equal(
      `nothing to apply: the database is up to date (${names.length} migrations, the last ${names.at(-1)})\n`,
    );
    const json = JSON.parse((await runCli(['migrate', '--json'], env)).stdout);
    expect(json).to.deep.equal({ status: 'success', applied: [], migrations: names });
  });

  it('give runs their slot and a count of duplicate fires, and take them away again', async () => {
    db = await createTestDatabase({ migrated: false });
    const migrator = db.orm.getMigrator();
    await migrator.up({ to: 'Migration0006PauseEvents' });
    await db.sql.query(
      `insert into taskgate.task_run (task, trigger, status) values ('a', 'cli', 'succeeded')`,
    );
    expect(await migrate(db.orm)).to.deep.equal(['Migration0007Slots']);
    const run = await db.sql.query('select slot, duplicate_fires from taskgate.task_run');
    expect(run.rows).to.deep.equal([{ slot: null, duplicate_fires: 0 }], 'a run from before slots has none');
    const index = await db.sql.query(
      `select indexdef from pg_indexes where schemaname = 'taskgate' and indexname = 'task_run_slot_index'`,
    );
    expect(index.rows[0]?.indexdef).to.match(/\(task, slot DESC\) WHERE \(slot IS NOT NULL\)$/);
    expect((await migrator.down()).map((m) => m.name)).to.deep.equal(['Migration0007Slots']);
    const columns = await db.sql.query(
      `select column_name from information_schema.columns where table_schema = 'taskgate' and table_name = 'task_run'
          and column_name in ('slot', 'duplicate_fires')`,
    );
    expect(columns.rows).to.deep.equal([]);
  });

  it('are a no-op when run a second time', async () => {
    db = await createTestDatabase({ migrated: true });
    expect(await migrate(db.orm)).to.deep.equal([]);
  });
});
