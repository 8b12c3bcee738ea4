import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { migrationsList } from '../src/db/migrations/index.js';
import { migrate } from '../src/db/orm.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { adminQuery, testCluster, urlFor } from './support/global.js';
import { TEST_SECRET } from './support/runner.js';

const FLUSH = 'flushexpiredtokens_daily';

/** A password that must never be printed: the cluster's own, or one a trust-auth server ignores. */
const PASSWORD = () => new URL(testCluster().adminUrl).password || 'hunter2-never-printed';

/** Neither the URL with its credentials nor the password after the user name (`user:password@`). */
function expectNoPassword(output: string): void {
  expect(output).to.not.include(`:${PASSWORD()}@`);
  // The embedded test cluster's password is the word "taskgate", which every message holds.
  if (PASSWORD() !== 'taskgate') expect(output).to.not.include(PASSWORD());
}

/** The test cluster's URL for a database, with a password. */
function urlWithPassword(database: string, user?: string): string {
  const url = new URL(urlFor(testCluster().adminUrl, database));
  if (user) url.username = user;
  url.password = PASSWORD();
  return url.toString();
}

const databaseExists = async (name: string) =>
  (await adminQuery('select 1 from pg_database where datname = $1', [name])).rowCount === 1;

describe('a DATABASE_URL whose database is wrong', () => {
  const typo = `taskgate_typo_${randomBytes(4).toString('hex')}`;
  after(async () => adminQuery(`drop database if exists ${typo}`));

  for (const args of [['runs'], ['run', FLUSH], ['migrate'], ['status']]) {
    it(`${args[0]}: exits 1 with one line naming the missing database, and creates nothing`, async () => {
      const result = await runCli(args, {
        NODE_ENV: 'production',
        DATABASE_URL: urlWithPassword(typo),
        CRON_SECRET_KEY: TEST_SECRET,
      });
      expect(result.code, result.stderr).to.equal(1);
      expect(result.stderr).to.match(
        new RegExp(
          `^taskgate: database "${typo}" on [^ ]+ as "[^"]+" does not exist: check DATABASE_URL \\(taskgate never creates a database\\)\\n$`,
        ),
      );
      expectNoPassword(result.stdout + result.stderr);
      expect(await databaseExists(typo)).to.equal(false);
    });
  }

  it('serve in production: exits 1 with that line before listening, and creates nothing', async () => {
    const result = await runCli(['serve'], {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: urlWithPassword(typo),
      CRON_SECRET_KEY: TEST_SECRET,
    });
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(new RegExp(`^taskgate: database "${typo}" .* does not exist: .*\\n$`));
    expect(result.stdout).to.not.include('listening');
    expectNoPassword(result.stdout + result.stderr);
    expect(await databaseExists(typo)).to.equal(false);
  });

  it('exits 1 with one line naming the database when the role may not connect, without the password', async () => {
    const db = await createTestDatabase();
    try {
      const result = await runCli(['runs'], {
        NODE_ENV: 'production',
        DATABASE_URL: urlWithPassword(db.name, 'no_such_role_here'),
      });
      expect(result.code).to.equal(1);
      // The server's words: trust auth finds no role, password auth refuses the password.
      const reason =
        /(role "no_such_role_here" does not exist|password authentication failed for user "no_such_role_here")/;
      expect(result.stderr).to.match(
        new RegExp(
          `^taskgate: database "${db.name}" on ${new URL(db.url).host} as "no_such_role_here" refused the connection ` +
            `\\(${reason.source}\\): check DATABASE_URL \\(taskgate never creates a database\\)\\n$`,
        ),
      );
      expectNoPassword(result.stdout + result.stderr);
    } finally {
      await db.drop();
    }
  });
});

describe('read-only commands against a DATABASE_URL', function () {
  // Each test starts the CLI up to four times, a few seconds each on a loaded machine.
  this.timeout(120_000);
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db.drop());

  // Production, and no CRON_SECRET_KEY: these commands never use it.
  const env = () => ({ NODE_ENV: 'production', DATABASE_URL: db.url });

  for (const args of [['list'], ['runs'], ['status'], ['workflow', '--check'], ['doctor']]) {
    it(`${args.join(' ')} runs in production without CRON_SECRET_KEY`, async () => {
      const result = await runCli(args, env());
      expect(result.code, result.stdout + result.stderr).to.equal(0);
      if (args[0] === 'doctor')
        expect(result.stdout).to.match(/^SKIP +secret +CRON_SECRET_KEY is not set here/m);
    });
  }

  it('runs leaves a run of a dead process as it is (serve marks it abandoned, not a read)', async () => {
    await db.orm.em
      .getConnection()
      .execute(`insert into taskgate.task_run (task, trigger, status) values ('${FLUSH}', 'cli', 'running')`);
    const result = await runCli(['runs', '--json'], env());
    expect(result.code, result.stderr).to.equal(0);
    expect(JSON.parse(result.stdout).map((r: { status: string }) => r.status)).to.deep.equal(['running']);
    const rows = await db.orm.em.getConnection().execute('select status from taskgate.task_run');
    expect(rows.map((r) => r.status)).to.deep.equal(['running']);
  });

  it('on a database taskgate has not migrated, say so and migrate nothing; migrate does it', async () => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const result = await runCli(['runs'], { NODE_ENV: 'production', DATABASE_URL: empty.url });
      expect(result.code).to.equal(1);
      expect(result.stderr).to.equal(
        `taskgate: taskgate's schema in database "${empty.name}" on ${new URL(empty.url).host} as ` +
          `"${decodeURIComponent(new URL(empty.url).username)}" is not migrated (${migrationsList.length} pending): ` +
          'run `taskgate migrate` (`taskgate serve` migrates at start)\n',
      );
      const listed = await runCli(['list'], { NODE_ENV: 'production', DATABASE_URL: empty.url });
      expect(listed.code, 'list lists the tasks without their pauses').to.equal(0);
      expect(listed.stderr).to.equal(
        "taskgate: pauses not shown, the database could not be read: taskgate's schema there is not migrated (taskgate migrate)\n",
      );
      expect(listed.stdout).to.match(/^flushexpiredtokens_daily /m);
      const schemas = await empty.orm.em
        .getConnection()
        .execute(`select nspname from pg_namespace where nspname = 'taskgate'`);
      expect(schemas).to.deep.equal([]);
      const migrated = await runCli(['migrate', '--json'], {
        NODE_ENV: 'production',
        DATABASE_URL: empty.url,
      });
      expect(migrated.code, migrated.stderr).to.equal(0);
      expect((await runCli(['runs'], { NODE_ENV: 'production', DATABASE_URL: empty.url })).stdout).to.equal(
        'no runs yet\n',
      );
    } finally {
      await empty.drop();
    }
  });

  it("run, which records its run, makes taskgate's schema on a database that has none, as serve does", async () => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const result = await runCli(['run', 'prunetaskruns_weekly', '--dry-run', '--json'], {
        NODE_ENV: 'production',
        DATABASE_URL: empty.url,
      });
      expect(result.code, result.stderr).to.equal(0);
      expect(JSON.parse(result.stdout)).to.include({
        task: 'prunetaskruns_weekly',
        status: 'succeeded',
        dryRun: true,
      });
      const recorded = await empty.orm.em
        .getConnection()
        .execute('select task, dry_run from taskgate.task_run');
      expect(recorded).to.deep.equal([{ task: 'prunetaskruns_weekly', dry_run: true }]);
    } finally {
      await empty.drop();
    }
  });
});

describe('flushexpiredtokens_daily on a database without simplejwt tables', () => {
  it('fails its run, naming the missing tables and what to check, and creates no table', async () => {
    const db = await createTestDatabase({ migrated: false });
    try {
      await migrate(db.orm);
      const result = await runCli(['run', FLUSH, '--json'], { DATABASE_URL: db.url });
      expect(result.code).to.equal(1);
      const run = JSON.parse(result.stdout);
      expect(run).to.include({ task: FLUSH, status: 'failed' });
      expect(run.error).to.equal(
        `simplejwt's tables "token_blacklist_outstandingtoken" and "token_blacklist_blacklistedtoken" are not in ` +
          `database "${db.name}": check that DATABASE_URL names the application's database, that the application's ` +
          '`manage.py migrate` has run with rest_framework_simplejwt.token_blacklist installed, and ' +
          'SIMPLEJWT_OUTSTANDING_TABLE and SIMPLEJWT_BLACKLIST_TABLE if it renamed the tables',
      );
      const tables = await db.orm.em
        .getConnection()
        .execute(`select table_name from information_schema.tables where table_schema = 'public'`);
      expect(tables).to.deep.equal([]);
    } finally {
      await db.drop();
    }
  });
});
