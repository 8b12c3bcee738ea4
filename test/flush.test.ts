import { readFile } from 'node:fs/promises';
import { expect } from 'chai';
import pg from 'pg';
import { Registry, validateTask } from '../src/core/registry.js';
import { Runner } from '../src/core/runner.js';
import { migrate } from '../src/db/orm.js';
import { createLogger, type Logger } from '../src/logger.js';
import { MAX_BATCH_SIZE, MIN_BATCH_SIZE, nextBatchSize } from '../tasks/_simplejwt/flush.js';
import flushTask from '../tasks/flushexpiredtokens_daily.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { testConfig } from './support/runner.js';

const DJANGO_DDL = new URL('./fixtures/django-token-tables.sql', import.meta.url);
const TASK = 'flushexpiredtokens_daily';
const O = 'token_blacklist_outstandingtoken';
const B = 'token_blacklist_blacklistedtoken';
const CUTOFF = new Date('2031-03-04T05:06:07.890Z');
const silent = createLogger({ level: 'silent', pretty: false });

interface TokenSpec {
  /** An interval from the cutoff, such as '-1 day' or '1 microsecond'. */
  expires: string;
  blacklisted?: boolean;
  user?: boolean;
  createdAt?: boolean;
}

describe('flushexpiredtokens_daily', () => {
  let db: TestDatabase;
  let sql: pg.Client;
  let userId: number;

  /** Inserts tokens in order (ids ascending) and returns their ids. */
  async function insertTokens(specs: TokenSpec[], cutoff: Date | 'now' = CUTOFF): Promise<string[]> {
    const ids: string[] = [];
    for (const [i, spec] of specs.entries()) {
      const { rows } = await sql.query(
        `insert into ${O} (token, created_at, expires_at, user_id, jti)
         values ('header.payload.' || $1, case when $2 then now() end,
                 coalesce($3::timestamptz, now()) + $4::interval, $5, 'jti-' || $1)
         returning id::text`,
        [
          `${ids.length}-${i}-${Math.random()}`,
          spec.createdAt ?? true,
          cutoff === 'now' ? null : cutoff.toISOString(),
          spec.expires,
          spec.user === false ? null : userId,
        ],
      );
      const id = rows[0]!.id as string;
      if (spec.blacklisted) {
        await sql.query(`insert into ${B} (blacklisted_at, token_id) values (now(), $1)`, [id]);
      }
      ids.push(id);
    }
    return ids;
  }

  const tokenIds = async () =>
    (await sql.query(`select o.id::text from ${O} as o order by o.id`)).rows.map((r) => r.id as string);
  const blacklistedIds = async () =>
    (await sql.query(`select b.token_id::text as id from ${B} as b order by b.token_id`)).rows.map(
      (r) => r.id as string,
    );
  const danglingBlacklistRows = async () =>
    Number(
      (
        await sql.query(
          `select count(*) as n from ${B} b where not exists (select from ${O} o where o.id = b.token_id)`,
        )
      ).rows[0]!.n,
    );

  /** Calls the task's own `run` with a context of the test's making. */
  function runTask(
    options: {
      batchSize?: number;
      /** 0 (here) keeps every batch at batchSize, so that tests can count batches. */
      batchTargetMs?: number;
      now?: Date;
      dryRun?: boolean;
      signal?: AbortSignal;
      logger?: Logger;
    } = {},
  ) {
    return flushTask.run({
      params: { batchSize: options.batchSize ?? 5_000, batchTargetMs: options.batchTargetMs ?? 0 },
      db: db.sql,
      logger: options.logger ?? silent,
      now: options.now ?? CUTOFF,
      signal: options.signal ?? new AbortController().signal,
      dryRun: options.dryRun ?? false,
      runId: 'test-run',
      settings: { SIMPLEJWT_OUTSTANDING_TABLE: O, SIMPLEJWT_BLACKLIST_TABLE: B },
    });
  }

  function runner(extraEnv: Record<string, string> = {}) {
    // The task's settings come from the environment as the tasks load: a registry of its own.
    const own = new Registry([validateTask('flushexpiredtokens_daily.ts', flushTask, extraEnv)]);
    return new Runner({ db: db.sql, registry: own, logger: silent, config: testConfig(db, extraEnv) });
  }

  /** Resolves once `count` sessions of this database are waiting for a lock. */
  async function lockWaiters(count: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const { rows } = await sql.query(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`,
      );
      if (rows[0]!.n >= count) return;
      if (Date.now() > deadline) throw new Error(`fewer than ${count} sessions waiting for a lock`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async function connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    return client;
  }

  before(async () => {
    // Django's exact tables first, then taskgate's migrations: the layout of a Django database
    // that taskgate is pointed at.
    db = await createTestDatabase({ migrated: false });
    await db.orm.em.getConnection().execute(await readFile(DJANGO_DDL, 'utf8'));
    await migrate(db.orm);
    sql = await connect();
  });
  after(async () => {
    await sql?.end();
    await db?.drop();
  });
  beforeEach(async () => {
    await sql.query(`truncate ${B}, ${O}, auth_user restart identity`);
    const { rows } = await sql.query(
      `insert into auth_user (password, is_superuser, username, first_name, last_name, email,
                              is_staff, is_active, date_joined)
       values ('!', false, 'ada', '', '', 'ada@example.com', false, true, now()) returning id`,
    );
    userId = rows[0]!.id;
  });

  it('deletes a token expiring exactly at the cutoff and keeps one expiring a microsecond later', async () => {
    const [, later] = await insertTokens([{ expires: '0' }, { expires: '1 microsecond' }]);
    const result = await runTask();
    expect(result).to.include({ cutoff: CUTOFF.toISOString(), deletedOutstanding: 1, deletedBlacklisted: 0 });
    expect(await tokenIds()).to.deep.equal([later]);
  });

  it('deletes expired tokens that have no user or no created_at, and leaves the users alone', async () => {
    await insertTokens([
      { expires: '-1 day', user: false },
      { expires: '-1 day', createdAt: false },
      { expires: '-1 day', user: false, createdAt: false },
    ]);
    const [live] = await insertTokens([{ expires: '1 day', user: false, createdAt: false }]);
    const result = await runTask();
    expect(result).to.include({ deletedOutstanding: 3 });
    expect(await tokenIds()).to.deep.equal([live]);
    expect((await sql.query('select count(*)::int as n from auth_user')).rows[0]!.n).to.equal(1);
  });

  it('keeps live blacklisted tokens with their blacklist rows', async () => {
    const ids = await insertTokens([
      { expires: '1 second', blacklisted: true },
      { expires: '-1 day' },
      { expires: '30 days', blacklisted: true },
    ]);
    const result = await runTask();
    expect(result).to.include({ deletedOutstanding: 1, deletedBlacklisted: 0 });
    expect(await tokenIds()).to.deep.equal([ids[0], ids[2]]);
    expect(await blacklistedIds()).to.deep.equal([ids[0], ids[2]]);
  });

  it('removes expired blacklisted tokens together with their blacklist rows, batch after batch', async () => {
    // Expired, live, blacklisted and not, interleaved so that every batch of 3 mixes them.
    const specs: TokenSpec[] = Array.from({ length: 20 }, (_, i) => ({
      expires: i % 2 === 0 ? '-1 hour' : '1 hour',
      blacklisted: i % 3 === 0,
    }));
    const ids = await insertTokens(specs);
    const result = await runTask({ batchSize: 3 });
    const live = ids.filter((_, i) => i % 2 === 1);
    expect(result).to.deep.include({
      deletedOutstanding: 10,
      deletedBlacklisted: ids.filter((_, i) => i % 2 === 0 && i % 3 === 0).length,
      batches: 7,
      complete: true,
    });
    expect(result).to.have.property('longestBatchMs').that.is.a('number');
    expect(await tokenIds()).to.deep.equal(live);
    expect(await blacklistedIds()).to.deep.equal(ids.filter((_, i) => i % 2 === 1 && i % 3 === 0));
  });

  it('sizes each batch to take about batchTargetMs: at most twice the last while batches are quick, smaller at once after a slow one, within bounds', () => {
    expect(nextBatchSize(5_000, 10, 100)).to.equal(10_000);
    expect(nextBatchSize(5_000, 40, 100)).to.equal(10_000);
    expect(nextBatchSize(5_000, 80, 100)).to.equal(6_250);
    expect(nextBatchSize(5_000, 400, 100)).to.equal(1_250);
    expect(nextBatchSize(40_000, 1, 100)).to.equal(MAX_BATCH_SIZE);
    expect(nextBatchSize(200, 10_000, 100)).to.equal(MIN_BATCH_SIZE);
    expect(nextBatchSize(5_000, 0, 100), 'a batch under a millisecond').to.equal(10_000);
    expect(nextBatchSize(5_000, 10, 0), 'no target: the size stays').to.equal(5_000);
  });

  it('grows its batches while they are quick, and deletes the same as fixed batches', async () => {
    const specs: TokenSpec[] = Array.from({ length: 3_000 }, (_, i) => ({
      expires: i % 2 === 0 ? '-1 hour' : '1 hour',
      blacklisted: i % 5 === 0,
    }));
    const ids = await insertTokens(specs);
    const sizes: number[] = [];
    const logger = createLogger({
      level: 'debug',
      pretty: false,
      destination: {
        write(line: string) {
          const entry = JSON.parse(line);
          if (entry.msg === 'batch committed') sizes.push(entry.size);
        },
      },
    });
    // A target no batch of these few rows comes near: each batch is twice the last.
    const result = await runTask({ batchSize: MIN_BATCH_SIZE, batchTargetMs: 1_000, logger });
    expect(sizes).to.deep.equal([100, 200, 400, 800, 1_600]);
    expect(result).to.deep.include({
      deletedOutstanding: 1_500,
      deletedBlacklisted: ids.filter((_, i) => i % 2 === 0 && i % 5 === 0).length,
      batches: 5,
      largestBatchSize: 1_600,
      complete: true,
    });
    expect(await tokenIds()).to.deep.equal(ids.filter((_, i) => i % 2 === 1));
    expect(await danglingBlacklistRows()).to.equal(0);
  });

  it('deletes a blacklist row the application commits while a batch waits for its token', async () => {
    // The application blacklists an expired token with an immediate foreign key check, which
    // holds a lock on the token; the flush's delete of that token waits for it; the
    // application commits during the batch. The batch must see and delete the new row: a batch
    // reading the blacklist in the same statement as the tokens would miss it and fail at commit.
    const [token, live] = await insertTokens([{ expires: '-1 day' }, { expires: '1 day' }]);
    const app = await connect();
    try {
      await app.query('begin');
      await app.query(`insert into ${B} (blacklisted_at, token_id) values (now(), $1)`, [token]);
      await app.query('set constraints all immediate');
      const flush = runTask();
      await lockWaiters(1);
      await app.query('commit');
      const result = await flush;
      expect(result).to.include({ deletedOutstanding: 1, deletedBlacklisted: 1 });
      expect(await tokenIds()).to.deep.equal([live]);
      expect(await blacklistedIds()).to.deep.equal([]);
    } finally {
      await app.end();
    }
  });

  it('makes the application fail, not the flush, when it blacklists a token a batch is deleting', async () => {
    const [token, other] = await insertTokens([
      { expires: '-1 day' },
      { expires: '-1 day', blacklisted: true },
    ]);
    const app = await connect();
    const holder = await connect();
    try {
      // Hold the flush inside its batch, after it deleted the tokens (and so holds their locks):
      // another session has locked the blacklist row the batch must delete next.
      await holder.query('begin');
      await holder.query(`select 1 from ${B} where token_id = $1 for update`, [other]);
      const flush = runTask();
      await lockWaiters(1);
      // The application blacklists the first token meanwhile; its commit checks the key,
      // which waits for the batch.
      await app.query('begin');
      await app.query(`insert into ${B} (blacklisted_at, token_id) values (now(), $1)`, [token]);
      const commit = app.query('commit').then(
        () => null,
        (error: { code?: string }) => error,
      );
      await lockWaiters(2);
      await holder.query('rollback');
      const result = await flush;
      expect(result).to.include({ deletedOutstanding: 2, deletedBlacklisted: 1 });
      expect((await commit)?.code).to.equal('23503');
      expect(await tokenIds()).to.deep.equal([]);
      expect(await danglingBlacklistRows()).to.equal(0);
    } finally {
      await Promise.all([app.end(), holder.end()]);
    }
  });

  it('makes the application fail when its blacklist row, inserted before a batch, commits after it', async () => {
    const [token] = await insertTokens([{ expires: '-1 day' }]);
    const app = await connect();
    try {
      await app.query('begin');
      await app.query(`insert into ${B} (blacklisted_at, token_id) values (now(), $1)`, [token]);
      const result = await runTask();
      expect(result).to.include({ deletedOutstanding: 1, deletedBlacklisted: 0 });
      const error = await app.query('commit').then(
        () => null,
        (e: { code?: string }) => e,
      );
      expect(error?.code).to.equal('23503');
      expect(await danglingBlacklistRows()).to.equal(0);
    } finally {
      await app.end();
    }
  });

  it('runs a batch again when a deadlock with the application rolls it back', async () => {
    // Django deletes a user's blacklist rows, then their tokens: the opposite order to a batch.
    const [, doomed, live] = await insertTokens([
      { expires: '-1 day' },
      { expires: '-1 day', blacklisted: true },
      { expires: '1 day' },
    ]);
    const app = await connect();
    try {
      // The application's session checks for deadlocks last, whatever the machine's load: the
      // batch's check (after the default 1 s) finds the cycle and aborts the batch.
      await app.query(`set deadlock_timeout = '10s'`);
      await app.query('begin');
      await app.query(`delete from ${B} where token_id = $1`, [doomed]);
      const flush = runTask();
      await lockWaiters(1);
      // The batch waits for the application's blacklist row, the application for the batch's
      // token: PostgreSQL aborts the batch, which waited first, and the application goes on.
      await app.query(`delete from ${O} where id = $1`, [doomed]);
      await app.query('commit');
      const result = await flush;
      expect(result).to.include({ deletedOutstanding: 1, deletedBlacklisted: 0, complete: true });
      // Once, or again when its retry met the application's delete before that went through.
      expect((result as { retries: number }).retries).to.be.within(1, 4);
      expect(await tokenIds()).to.deep.equal([live]);
      expect(await danglingBlacklistRows()).to.equal(0);
    } finally {
      await app.end();
    }
  });

  it('stops between batches when aborted, and a rerun finishes the job', async () => {
    const specs: TokenSpec[] = Array.from({ length: 12 }, (_, i) => ({
      expires: i % 3 === 2 ? '1 day' : '-1 day',
      blacklisted: i % 4 === 0,
    }));
    const ids = await insertTokens(specs);
    const abort = new AbortController();
    // The task logs each committed batch; abort as the first one is reported.
    const logger = createLogger({
      level: 'debug',
      pretty: false,
      destination: {
        write(line: string) {
          if (JSON.parse(line).msg === 'batch committed') abort.abort(new Error('shutting down'));
        },
      },
    });
    const first = await runTask({ batchSize: 3, signal: abort.signal, logger });
    expect(first).to.include({ batches: 1, deletedOutstanding: 2, deletedBlacklisted: 1, complete: false });
    expect(await tokenIds()).to.have.length(10);

    const rerun = await runTask({ batchSize: 3 });
    expect(rerun).to.include({ deletedOutstanding: 6, deletedBlacklisted: 1, complete: true });
    expect(await tokenIds()).to.deep.equal(ids.filter((_, i) => i % 3 === 2));
    expect(await danglingBlacklistRows()).to.equal(0);
  });

  it('counts what it would delete on a dry run and deletes nothing', async () => {
    await insertTokens(
      [
        { expires: '-2 days', blacklisted: true },
        { expires: '-1 day' },
        { expires: '-1 second', blacklisted: true },
        { expires: '1 day', blacklisted: true },
      ],
      'now',
    );
    const run = await runner().run({ task: TASK, dryRun: true, trigger: 'cli' });
    expect(run.status).to.equal('succeeded');
    expect(run.result).to.include({
      dryRun: true,
      wouldDeleteOutstanding: 3,
      wouldDeleteBlacklisted: 2,
      deletedOutstanding: 0,
      batches: 0,
    });
    expect(await tokenIds()).to.have.length(4);
    expect(await blacklistedIds()).to.have.length(3);
  });

  it('succeeds on empty tables with nothing deleted', async () => {
    const run = await runner().run({ task: TASK, trigger: 'cli' });
    expect(run.status).to.equal('succeeded');
    expect(run.result).to.include({
      deletedOutstanding: 0,
      deletedBlacklisted: 0,
      batches: 0,
      complete: true,
    });
  });

  it('records what it deleted when a later batch fails: the run is failed, with its counts', async () => {
    const ids = await insertTokens(
      Array.from({ length: 6 }, () => ({ expires: '-1 day' })),
      'now',
    );
    // The third batch (tokens 5 and 6) fails inside PostgreSQL; the first two have committed.
    await sql.query(`create function refuse_delete() returns trigger language plpgsql as
      $$ begin raise exception 'disk on fire'; end $$`);
    await sql.query(`create trigger refuse_delete before delete on ${O}
      for each row when (old.id = ${ids[4]}) execute function refuse_delete()`);
    try {
      const run = await runner().run({
        task: TASK,
        params: { batchSize: 2, batchTargetMs: 0 },
        trigger: 'cli',
      });
      expect(run.status).to.equal('failed');
      expect(run.error).to.equal('disk on fire');
      expect(run.result).to.include({
        deletedOutstanding: 4,
        deletedBlacklisted: 0,
        batches: 2,
        complete: false,
      });
      expect(await tokenIds()).to.have.length(2);
    } finally {
      await sql.query(`drop trigger refuse_delete on ${O}; drop function refuse_delete()`);
    }
  });

  it("takes the run's start on the database clock as the cutoff", async () => {
    await insertTokens([{ expires: '-1 second' }, { expires: '1 minute' }], 'now');
    const run = await runner().run({ task: TASK, trigger: 'http' });
    const result = run.result as { cutoff: string; deletedOutstanding: number };
    expect(result.cutoff).to.equal(new Date(run.startedAt).toISOString());
    expect(result.deletedOutstanding).to.equal(1);
  });

  it('flushes tables renamed by the application, named in SIMPLEJWT_*_TABLE', async () => {
    const ids = await insertTokens([{ expires: '-1 day', blacklisted: true }, { expires: '1 day' }], 'now');
    await sql.query(`alter table ${O} rename to "JwtOutstanding"`);
    await sql.query(`alter table ${B} rename to jwt_blacklisted`);
    try {
      const wrong = await runner().run({ task: TASK, trigger: 'cli' });
      expect(wrong.status).to.equal('failed');
      expect(wrong.error).to.equal(
        `simplejwt's tables "${O}" and "${B}" are not in database "${db.name}": check that DATABASE_URL ` +
          "names the application's database, that the application's `manage.py migrate` has run with " +
          'rest_framework_simplejwt.token_blacklist installed, and SIMPLEJWT_OUTSTANDING_TABLE and ' +
          'SIMPLEJWT_BLACKLIST_TABLE if it renamed the tables',
      );
      const run = await runner({
        SIMPLEJWT_OUTSTANDING_TABLE: 'JwtOutstanding',
        SIMPLEJWT_BLACKLIST_TABLE: 'jwt_blacklisted',
      }).run({ task: TASK, trigger: 'cli' });
      expect(run.status).to.equal('succeeded');
      expect(run.result).to.include({ deletedOutstanding: 1, deletedBlacklisted: 1 });
      const left = await sql.query('select id::text from "JwtOutstanding"');
      expect(left.rows.map((r) => r.id)).to.deep.equal([ids[1]]);
    } finally {
      await sql.query(`alter table "JwtOutstanding" rename to ${O}`);
      await sql.query(`alter table jwt_blacklisted rename to ${B}`);
    }
  });

  it('refuses tables whose blacklist key is not deferrable, with a message saying why', async () => {
    await sql.query(`create table plain_outstanding (id bigint primary key, expires_at timestamptz not null);
      create table plain_blacklist (id bigint primary key, token_id bigint not null references plain_outstanding)`);
    try {
      const run = await runner({
        SIMPLEJWT_OUTSTANDING_TABLE: 'plain_outstanding',
        SIMPLEJWT_BLACKLIST_TABLE: 'plain_blacklist',
      }).run({ task: TASK, trigger: 'cli' });
      expect(run.status).to.equal('failed');
      expect(run.error).to.match(/^foreign key "plain_blacklist_token_id_fkey" .* is not DEFERRABLE/);
    } finally {
      await sql.query('drop table plain_blacklist, plain_outstanding');
    }
  });

  it('refuses a batchSize below 1 as bad params', async () => {
    const error = await runner()
      .run({ task: TASK, params: { batchSize: 0 }, trigger: 'cli' })
      .catch((e: unknown) => e);
    expect(error).to.include({ code: 'INVALID_PARAMS' });
  });

  it('runs from the real CLI, exiting 0 and printing the counts', async () => {
    await insertTokens(
      [
        { expires: '-1 day', blacklisted: true },
        { expires: '-1 day' },
        { expires: '1 day', blacklisted: true },
      ],
      'now',
    );
    const { code, stdout, stderr } = await runCli(['run', TASK, '--json'], {
      DATABASE_URL: db.url,
      CRON_SECRET_KEY: 'b1f0c9e27d4a86b35e0f17c2a9d84e6b3c05f7a1',
    });
    expect(code, stderr).to.equal(0);
    const run = JSON.parse(stdout);
    expect(run).to.include({ task: TASK, status: 'succeeded', trigger: 'cli' });
    expect(run.result).to.include({ deletedOutstanding: 2, deletedBlacklisted: 1, complete: true });
    expect(await tokenIds()).to.have.length(1);
  });
});
