import { randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import { migrationsList } from '../src/db/migrations/index.js';
import { migrate } from '../src/db/orm.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { requirePgBouncer, startPgBouncer } from './support/pgbouncer.js';
import { TEST_SECRET } from './support/runner.js';

const DJANGO_DDL = new URL('./fixtures/django-token-tables.sql', import.meta.url);

interface Report {
  status: string;
  checks: { name: string; verdict: string; message: string }[];
}

async function doctor(env: Record<string, string>): Promise<{ code: number | null; report: Report }> {
  const result = await runCli(['doctor', '--json'], env);
  return { code: result.code, report: JSON.parse(result.stdout) };
}

const verdicts = (report: Report) => Object.fromEntries(report.checks.map((c) => [c.name, c.verdict]));
const message = (report: Report, name: string) => report.checks.find((c) => c.name === name)?.message;

describe('taskgate doctor', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
    await db.orm.em.getConnection().execute(
      `insert into token_blacklist_outstandingtoken (token, expires_at, jti) values
         ('a', now() - interval '1 day', 'jti-a'), ('b', now() + interval '1 day', 'jti-b'),
         ('c', now() - interval '1 hour', 'jti-c')`,
    );
    await db.orm.em.getConnection().execute(
      `insert into token_blacklist_blacklistedtoken (blacklisted_at, token_id)
         select now(), id from token_blacklist_outstandingtoken where jti = 'jti-a'`,
    );
  });
  after(async () => db.drop());

  it('passes every check on a healthy database and exits 0, one line per check', async () => {
    const { code, report } = await doctor({ DATABASE_URL: db.url, CRON_SECRET_KEY: TEST_SECRET });
    expect(code).to.equal(0);
    expect(report.status).to.equal('ok');
    // One line per check, every one ok; the Django pack's tasks add theirs (test/pack.test.ts).
    expect(Object.values(verdicts(report)).every((verdict) => verdict === 'ok')).to.equal(true);
    expect(verdicts(report)).to.include({
      database: 'ok',
      pooler: 'ok',
      schema: 'ok',
      'clearsessions_daily: table': 'ok',
      'clearsessions_daily: privileges': 'ok',
      'flushexpiredtokens_daily: tables': 'ok',
      'flushexpiredtokens_daily: privileges': 'ok',
      'flushexpiredtokens_daily: tokens': 'ok',
      clock: 'ok',
      secret: 'ok',
      workflow: 'ok',
    });
    expect(message(report, 'database')).to.match(
      new RegExp(`^PostgreSQL \\d+\\.\\d+.* answers: database "${db.name}"`),
    );
    expect(message(report, 'flushexpiredtokens_daily: tokens')).to.equal(
      '3 outstanding tokens, 2 expired (1 of them blacklisted): the next run deletes those',
    );
    const text = await runCli(['doctor'], { DATABASE_URL: db.url, CRON_SECRET_KEY: TEST_SECRET });
    expect(text.code).to.equal(0);
    expect(text.stdout.trim().split('\n')).to.have.length(report.checks.length);
    expect(text.stdout).to.match(/^OK +database +PostgreSQL/);
  });

  it('fails on a Django database whose blacklist key is not DEFERRABLE, and says why', async () => {
    const django = await createTestDatabase({ migrated: false });
    try {
      const connection = django.orm.em.getConnection();
      await connection.execute(await readFile(DJANGO_DDL, 'utf8'));
      await migrate(django.orm);
      await connection.execute(
        `alter table token_blacklist_blacklistedtoken
           alter constraint token_blacklist_blacklistedtoken_token_id_3cc7fe56_fk not deferrable`,
      );
      const { code, report } = await doctor({ DATABASE_URL: django.url, CRON_SECRET_KEY: TEST_SECRET });
      expect(code).to.equal(1);
      expect(report.status).to.equal('failed');
      expect(verdicts(report)).to.include({
        database: 'ok',
        schema: 'ok',
        'flushexpiredtokens_daily: tables': 'fail',
      });
      expect(message(report, 'flushexpiredtokens_daily: tables')).to.match(
        /^foreign key "token_blacklist_blacklistedtoken_token_id_3cc7fe56_fk" of "token_blacklist_blacklistedtoken" is not DEFERRABLE/,
      );
    } finally {
      await django.drop();
    }
  });

  it('fails a role that can read the tables but not delete from them, naming what it lacks', async () => {
    // Roles belong to the whole cluster: one of this run's own, dropped at the end.
    const role = `taskgate_reader_${process.pid}_${Math.floor(Math.random() * 1e6)}`;
    const connection = db.orm.em.getConnection();
    // A password, for a cluster that asks for one (the embedded PostgreSQL does; trust ignores it).
    const password = randomBytes(12).toString('hex');
    await connection.execute(`create role ${role} login password '${password}'`);
    try {
      await connection.execute(
        `grant connect on database ${db.name} to ${role};
         grant usage on schema public, taskgate to ${role};
         grant select on all tables in schema public, taskgate to ${role}`,
      );
      const url = new URL(db.url);
      url.username = role;
      url.password = password;
      const { code, report } = await doctor({ DATABASE_URL: url.toString(), CRON_SECRET_KEY: TEST_SECRET });
      expect(code).to.equal(1);
      expect(verdicts(report)).to.include({
        'flushexpiredtokens_daily: tables': 'ok',
        'flushexpiredtokens_daily: privileges': 'fail',
        'clearsessions_daily: privileges': 'fail',
      });
      expect(message(report, 'flushexpiredtokens_daily: privileges')).to.satisfy((text: string) =>
        text.startsWith(
          `role "${role}" lacks DELETE on "token_blacklist_outstandingtoken", DELETE on "token_blacklist_blacklistedtoken": ` +
            `the run would fail on "permission denied" (GRANT DELETE ON the tables TO "${role}")`,
        ),
      );
      expect(message(report, 'clearsessions_daily: privileges')).to.match(
        new RegExp(`^role "${role}" lacks UPDATE on "django_session", DELETE on "django_session"`),
      );
      await connection.execute(
        `grant delete on token_blacklist_outstandingtoken, token_blacklist_blacklistedtoken to ${role}`,
      );
      const granted = await doctor({ DATABASE_URL: url.toString(), CRON_SECRET_KEY: TEST_SECRET });
      expect(verdicts(granted.report)).to.include({ 'flushexpiredtokens_daily: privileges': 'ok' });
      expect(message(granted.report, 'flushexpiredtokens_daily: privileges')).to.equal(
        `role "${role}" has SELECT, DELETE on "token_blacklist_outstandingtoken"; SELECT, DELETE on "token_blacklist_blacklistedtoken"`,
      );
    } finally {
      await connection.execute(`drop owned by ${role}; drop role ${role}`).catch(() => undefined);
      // DROP OWNED must run in each database the role has privileges in: this one only.
    }
  });

  it('warns when the schema is not migrated, naming what migrates it, and migrates nothing', async () => {
    const empty = await createTestDatabase({ migrated: false });
    try {
      const { code, report } = await doctor({ DATABASE_URL: empty.url, CRON_SECRET_KEY: TEST_SECRET });
      expect(code).to.equal(1);
      expect(verdicts(report)).to.include({ schema: 'warn', 'flushexpiredtokens_daily: tables': 'fail' });
      expect(message(report, 'flushexpiredtokens_daily: tables')).to.match(
        /; if this application does not need it, remove "flushexpiredtokens_daily" from taskgate\.config\.json$/,
      );
      expect(message(report, 'schema')).to.match(
        new RegExp(
          `^${migrationsList.length} migration\\(s\\) of taskgate's own schema not applied yet .*: ` +
            '`taskgate serve` applies them when it starts, or run `taskgate migrate`$',
        ),
      );
      const schemas = await empty.orm.em
        .getConnection()
        .execute(`select nspname from pg_namespace where nspname = 'taskgate'`);
      expect(schemas).to.deep.equal([]);
    } finally {
      await empty.drop();
    }
  });

  it('fails with the database named when it does not exist, and still checks the rest', async () => {
    const url = new URL(db.url);
    url.pathname = '/taskgate_no_such_database';
    const { code, report } = await doctor({ DATABASE_URL: url.toString(), CRON_SECRET_KEY: TEST_SECRET });
    expect(code).to.equal(1);
    expect(message(report, 'database')).to.match(/^database "taskgate_no_such_database" .* does not exist/);
    expect(verdicts(report)).to.include({ secret: 'ok', workflow: 'ok' });
  });

  it('reports a weak or repeated credential as a failed check, after checking everything else, and exits 1', async () => {
    const { code, report } = await doctor({
      DATABASE_URL: db.url,
      CRON_SECRET_KEY: 'ab'.repeat(20),
      METRICS_TOKEN: TEST_SECRET,
      STATUS_TOKEN: TEST_SECRET,
    });
    expect(code).to.equal(1);
    expect(verdicts(report)).to.include({ database: 'ok', schema: 'ok', clock: 'ok', workflow: 'ok' });
    const secrets = report.checks.filter((c) => c.name === 'secret');
    expect(secrets.map((c) => [c.verdict, c.message])).to.deep.equal([
      [
        'fail',
        'CRON_SECRET_KEY is too easy to guess: a repeat, guessed in about 2^7 tries, 2^112 needed (make one with: openssl rand -hex 32); `taskgate serve` refuses to start with it',
      ],
      [
        'fail',
        'STATUS_TOKEN is the same as METRICS_TOKEN: give the status page a token of its own (make one with: openssl rand -hex 32); `taskgate serve` refuses to start with it',
      ],
    ]);
  });

  it('passes a single UUIDv4 as the secret: 122 random bits', async () => {
    const { code, report } = await doctor({ DATABASE_URL: db.url, CRON_SECRET_KEY: randomUUID() });
    expect(code, JSON.stringify(report)).to.equal(0);
    expect(verdicts(report)).to.include({ secret: 'ok' });
  });

  describe('through PgBouncer', () => {
    before(function () {
      requirePgBouncer(this, 'doctor through PgBouncer');
    });

    it('warns of a transaction pooler, and exits 0', async () => {
      const bouncer = await startPgBouncer({ targetUrl: db.url, poolMode: 'transaction' });
      try {
        const { code, report } = await doctor({ DATABASE_URL: bouncer.url, CRON_SECRET_KEY: TEST_SECRET });
        expect(code, JSON.stringify(report)).to.equal(0);
        expect(verdicts(report)).to.include({ database: 'ok', pooler: 'warn', schema: 'ok' });
        expect(message(report, 'pooler')).to.match(/^connections go through a transaction pooler/);
      } finally {
        await bouncer.stop();
      }
    });

    it('finds no transaction pooler behind PgBouncer in session mode', async () => {
      const bouncer = await startPgBouncer({ targetUrl: db.url, poolMode: 'session' });
      try {
        const { code, report } = await doctor({ DATABASE_URL: bouncer.url, CRON_SECRET_KEY: TEST_SECRET });
        expect(code, JSON.stringify(report)).to.equal(0);
        expect(verdicts(report)).to.include({ pooler: 'ok' });
      } finally {
        await bouncer.stop();
      }
    });

    it('migrates through a transaction pooler, twice at once, and leaves no lock behind', async () => {
      const fresh = await createTestDatabase({ migrated: false });
      const bouncer = await startPgBouncer({ targetUrl: fresh.url, poolMode: 'transaction' });
      try {
        const env = { DATABASE_URL: bouncer.url };
        const [a, b] = await Promise.all([runCli(['migrate'], env), runCli(['migrate'], env)]);
        expect(a.code, a.stderr).to.equal(0);
        expect(b.code, b.stderr).to.equal(0);
        const again = await runCli(['migrate', '--json'], env);
        expect(again.code, again.stderr).to.equal(0);
        const locks = await fresh.orm.em.getConnection().execute<{ n: number }[]>(
          `select count(*)::int as n from pg_locks
              where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`,
        );
        expect(locks[0]?.n).to.equal(0);
      } finally {
        await bouncer.stop();
        await fresh.drop();
      }
    });
  });
});
