import { expect } from 'chai';
import pg from 'pg';
import { Registry, validateTask } from '../src/core/registry.js';
import { Runner } from '../src/core/runner.js';
import { createLogger } from '../src/logger.js';
import type { AnyTask } from '../src/task.js';
import axesExpire from '../tasks/axesexpireattempts_hourly.js';
import axesLogs from '../tasks/axesresetlogs_daily.js';
import celeryCleanup from '../tasks/celerybackendcleanup_daily.js';
import cleanOldHistory from '../tasks/cleanoldhistory_daily.js';
import clearResetTokens from '../tasks/clearresetpasswordtokens_daily.js';
import clearTokens from '../tasks/cleartokens_daily.js';
import deleteRevisions from '../tasks/deleterevisions_daily.js';
import knoxExpired from '../tasks/knoxexpiredtokens_daily.js';
import { runCli } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { seedOauth2 } from './support/oauth2-seed.js';
import { TEST_SECRET, testConfig } from './support/runner.js';

/**
 * What every task of the Django pack does besides matching upstream's rows (pack-equality.test.ts):
 * batches, dry runs, stopping between batches, a clear failure on missing tables, doctor's lines.
 * The test database has each task's tables, made by its prepareDevDatabase (the global setup).
 */
const NOW = new Date('2031-03-04T05:06:07.890Z');
const at = (offset: string) => `('${NOW.toISOString()}'::timestamptz + interval '${offset}')`;
const silent = createLogger({ level: 'silent', pretty: false });

interface Case {
  task: AnyTask;
  env?: Record<string, string>;
  /** The table the task deletes from. */
  table: string;
  /** Its count in the result's `deleted`, when not named after the table. */
  rule?: string;
  /** Inserts `old` rows the task deletes and `live` rows it keeps. */
  seed: (db: TestDatabase, old: number, live: number) => Promise<void>;
  /** The tables a missing one of which fails the run. */
  missing: string;
}

const access =
  (table: string, extra: { columns: string; values: string } | null) =>
  async (db: TestDatabase, old: number, live: number) => {
    await db.sql.query(
      `insert into ${table} (user_agent, ip_address, username, http_accept, path_info, attempt_time${extra ? `, ${extra.columns}` : ''})
       select 'agent ' || g, null, 'user' || g, '*/*', '/login/',
              case when g <= $1 then ${at('-400 days')} else ${at('0 seconds')} end${extra ? `, ${extra.values}` : ''}
         from generate_series(1, $1::int + $2::int) as g`,
      [old, live],
    );
  };

const CASES: Case[] = [
  {
    task: axesLogs,
    table: 'axes_accesslog',
    seed: access('axes_accesslog', null),
    missing: 'axes_accesslog',
  },
  {
    task: axesExpire,
    env: { AXES_COOLOFF_TIME: '1' },
    table: 'axes_accessattempt',
    seed: access('axes_accessattempt', {
      columns: 'get_data, post_data, failures_since_start',
      values: "'', '', 3",
    }),
    missing: 'axes_accessattempt',
  },
  {
    task: celeryCleanup,
    table: 'django_celery_results_taskresult',
    seed: async (db, old, live) => {
      await db.sql.query(
        `insert into django_celery_results_taskresult (task_id, status, content_type, content_encoding, date_done, date_created)
         select 'task-' || g, 'SUCCESS', 'application/json', 'utf-8',
                case when g <= $1 then ${at('-400 days')} else ${at('0 seconds')} end, ${at('-400 days')}
           from generate_series(1, $1::int + $2::int) as g`,
        [old, live],
      );
    },
    missing: 'django_celery_results_groupresult',
  },
  {
    task: cleanOldHistory,
    // Named, so that a missing one fails the run (found by their columns, a renamed one is not found at all).
    env: { SIMPLE_HISTORY_TABLES: 'inventory_historicalitem' },
    table: 'inventory_historicalitem',
    seed: async (db, old, live) => {
      await db.sql.query(
        `insert into inventory_historicalitem (id, name, history_date, history_type)
         select g, 'item', case when g <= $1 then ${at('-400 days')} else ${at('0 seconds')} end, '+'
           from generate_series(1, $1::int + $2::int) as g`,
        [old, live],
      );
    },
    missing: 'inventory_historicalitem',
  },
  {
    task: knoxExpired,
    table: 'knox_authtoken',
    seed: async (db, old, live) => {
      await db.sql.query(
        `insert into knox_authtoken (digest, created, user_id, expiry, token_key)
         select md5(g::text), ${at('-400 days')}, 1, case when g <= $1 then ${at('-1 day')} else ${at('1 day')} end, 'k' || g
           from generate_series(1, $1::int + $2::int) as g`,
        [old, live],
      );
    },
    missing: 'knox_authtoken',
  },
  {
    task: clearResetTokens,
    table: 'django_rest_passwordreset_resetpasswordtoken',
    seed: async (db, old, live) => {
      await db.sql.query(
        `insert into django_rest_passwordreset_resetpasswordtoken (created_at, key, ip_address, user_agent, user_id)
         select case when g <= $1 then ${at('-2 days')} else ${at('0 seconds')} end, 'key' || g, null, '', 1
           from generate_series(1, $1::int + $2::int) as g`,
        [old, live],
      );
    },
    missing: 'django_rest_passwordreset_resetpasswordtoken',
  },
  {
    task: clearTokens,
    table: 'oauth2_provider_grant',
    rule: 'grants',
    seed: async (db, old, live) => {
      await db.sql.query(
        `insert into oauth2_provider_application (id, client_id, redirect_uris, client_type, authorization_grant_type,
           client_secret, name, skip_authorization, created, updated, algorithm)
         values (1, 'client', '', 'public', 'password', '', 'app', false, now(), now(), '') on conflict do nothing`,
      );
      await db.sql.query(
        `insert into oauth2_provider_grant (code, expires, redirect_uri, scope, application_id, user_id, created, updated,
           code_challenge, code_challenge_method, nonce, claims)
         select 'code' || g, case when g <= $1 then ${at('-1 hour')} else ${at('1 hour')} end, '', '', 1, 1, now(), now(), '', '', '', ''
           from generate_series(1, $1::int + $2::int) as g`,
        [old, live],
      );
    },
    missing: 'oauth2_provider_idtoken',
  },
  {
    task: deleteRevisions,
    table: 'reversion_revision',
    seed: async (db, old, live) => {
      await db.sql.query(
        `with revisions as (
           insert into reversion_revision (date_created, comment)
           select case when g <= $1 then ${at('-400 days')} else ${at('0 seconds')} end, '' from generate_series(1, $1::int + $2::int) as g
           returning id)
         insert into reversion_version (object_id, format, serialized_data, object_repr, content_type_id, revision_id, db)
         select id::text, 'json', '[]', '', 1, id, 'default' from revisions`,
        [old, live],
      );
    },
    missing: 'reversion_version',
  },
];

describe('the Django pack tasks', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(async () => db?.drop());

  function runner(task: AnyTask, env: Record<string, string> = {}) {
    return new Runner({
      db: db.sql,
      registry: new Registry([validateTask(`${task.name}.ts`, task, env)]),
      logger: silent,
      config: testConfig(db, env),
      now: () => NOW,
    });
  }
  const withSql = async (fn: (client: pg.Client) => Promise<unknown>) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await fn(client);
    } finally {
      await client.end();
    }
  };
  const rows = async (table: string) =>
    Number((await db.sql.query(`select count(*)::int as n from ${table}`)).rows[0]!.n);

  for (const c of CASES) {
    describe(c.task.name, () => {
      beforeEach(async () => db.sql.query(`truncate ${c.table} cascade`));

      it('deletes in batches of batchSize, every matching row, and keeps the rest', async () => {
        await c.seed(db, 7, 3);
        const run = await runner(c.task, c.env).run({
          task: c.task.name,
          params: { batchSize: 2, batchTargetMs: 0 },
          trigger: 'cli',
        });
        expect(run.status, run.error ?? '').to.equal('succeeded');
        expect(run.result).to.deep.include({ complete: true });
        expect((run.result as { deleted: Record<string, number> }).deleted[c.rule ?? c.table]).to.equal(7);
        // Walking the primary key, 10 rows take 5 batches of 2; walking an index, 4 (the last one short).
        expect((run.result as { batches: number }).batches).to.be.within(4, 5);
        expect(await rows(c.table)).to.equal(3);
      });

      it('counts what it would delete on a dry run and deletes nothing', async () => {
        await c.seed(db, 4, 2);
        const run = await runner(c.task, c.env).run({ task: c.task.name, dryRun: true, trigger: 'cli' });
        expect(run.status, run.error ?? '').to.equal('succeeded');
        expect(run.result).to.deep.include({ dryRun: true, batches: 0 });
        expect(
          (run.result as { wouldDelete: Record<string, number> }).wouldDelete[c.rule ?? c.table],
        ).to.equal(4);
        expect(await rows(c.table)).to.equal(6);
      });

      it('stops between batches when its signal fires, and a rerun finishes the job', async () => {
        await c.seed(db, 5, 1);
        const abort = new AbortController();
        const logger = createLogger({
          level: 'debug',
          pretty: false,
          destination: {
            write(line: string) {
              if (JSON.parse(line).msg === 'batch committed') abort.abort(new Error('shutting down'));
            },
          },
        });
        const registered = validateTask(`${c.task.name}.ts`, c.task, c.env ?? {});
        const first = (await c.task.run({
          params: registered.params.parse({ batchSize: 2, batchTargetMs: 0 }),
          db: db.sql,
          logger,
          now: NOW,
          signal: abort.signal,
          dryRun: false,
          runId: 'test',
          settings: registered.settings,
        })) as { complete: boolean; batches: number };
        expect(first).to.include({ complete: false, batches: 1 });
        expect(await rows(c.table)).to.be.greaterThan(1);
        const rerun = await runner(c.task, c.env).run({ task: c.task.name, trigger: 'cli' });
        expect(rerun.result).to.deep.include({ complete: true });
        expect(await rows(c.table)).to.equal(1);
      });

      it('fails on a missing table with a message naming it, and creates nothing', async () => {
        await db.sql.query(`alter table ${c.missing} rename to gone_for_a_moment`);
        try {
          const run = await runner(c.task, c.env).run({ task: c.task.name, trigger: 'cli' });
          expect(run.status).to.equal('failed');
          expect(run.error).to.match(
            new RegExp(
              `^table "${c.missing}" is not in database "${db.name}": check that DATABASE_URL names the application's database`,
            ),
          );
          expect((await db.sql.query(`select to_regclass('${c.missing}') as t`)).rows[0]!.t).to.equal(null);
        } finally {
          await db.sql.query(`alter table gone_for_a_moment rename to ${c.missing}`);
        }
      });
    });
  }

  describe("cleartokens_daily on django-oauth-toolkit 3.4.1's rules (the default)", () => {
    const remaining = async () =>
      Object.fromEntries(
        await Promise.all(
          ['refreshtoken', 'accesstoken', 'grant'].map(async (table) => [
            table,
            (
              await db.sql.query(
                `select ${table === 'grant' ? 'code' : 'token'} as name from oauth2_provider_${table} order by 1`,
              )
            ).rows.map((r) => r.name as string),
          ]),
        ),
      );
    const idTokens = async () =>
      Number((await db.sql.query('select count(*)::int as n from oauth2_provider_idtoken')).rows[0]!.n);
    const empty = () =>
      db.sql.query(
        `truncate oauth2_provider_grant, oauth2_provider_refreshtoken, oauth2_provider_accesstoken,
                  oauth2_provider_idtoken, oauth2_provider_application, auth_user cascade`,
      );

    before(async () => {
      // seedOauth2 makes a user: the test database has no Django, so a stand-in auth_user.
      await db.sql.query(
        `create table if not exists auth_user (id serial primary key, password text, is_superuser bool, username text,
           first_name text, last_name text, email text, is_staff bool, is_active bool, date_joined timestamptz)`,
      );
    });
    beforeEach(empty);

    it('deletes revoked refresh tokens at once, orphaned ones, those whose access token expired E ago or more, then access tokens, ID tokens and grants', async () => {
      await withSql((c) => seedOauth2(c, NOW));
      const run = await runner(clearTokens, { OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS: '3600' }).run({
        task: clearTokens.name,
        params: { batchSize: 2, batchTargetMs: 0 },
        trigger: 'cli',
      });
      expect(run.status, run.error ?? '').to.equal('succeeded');
      expect((run.result as { deleted: Record<string, number> }).deleted).to.deep.equal({
        revokedRefreshTokens: 5,
        orphanedRefreshTokens: 1,
        expiredRefreshTokens: 2,
        accessTokens: 5,
        idTokens: 2,
        grants: 1,
      });
      expect(await remaining()).to.deep.equal({
        refreshtoken: ['rt-of-live'],
        accesstoken: ['at-at-now-alone', 'at-live-alone', 'at-live-revoked-refresh'],
        grant: ['grant-at-now', 'grant-live'],
      });
      expect(await idTokens()).to.equal(2);
      const source = await db.sql.query(
        `select source_refresh_token_id from oauth2_provider_accesstoken where token = 'at-live-alone'`,
      );
      expect(source.rows[0]!.source_refresh_token_id, 'its source refresh token was deleted').to.equal(null);
    });

    it('keeps revoked refresh tokens until they expire with REFRESH_TOKEN_REUSE_PROTECTION, and for the grace period', async () => {
      await withSql((c) => seedOauth2(c, NOW));
      await runner(clearTokens, {
        OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS: '3600',
        OAUTH2_PROVIDER_REFRESH_TOKEN_REUSE_PROTECTION: 'true',
      }).run({ task: clearTokens.name, trigger: 'cli' });
      expect((await remaining()).refreshtoken).to.deep.equal([
        'rt-of-live',
        'rt-of-live-revoked-after-E',
        'rt-revoked-just-now',
      ]);
      await empty();
      await withSql((c) => seedOauth2(c, NOW));
      // A grace period of 10 s keeps the token revoked a second ago; without an expiry no refresh token ages out.
      await runner(clearTokens, { OAUTH2_PROVIDER_REFRESH_TOKEN_GRACE_PERIOD_SECONDS: '10' }).run({
        task: clearTokens.name,
        trigger: 'cli',
      });
      expect((await remaining()).refreshtoken).to.deep.equal([
        'rt-of-at-at-E',
        'rt-of-at-before-E',
        'rt-of-live',
        'rt-revoked-just-now',
      ]);
    });
  });

  it('axesexpireattempts_hourly deletes nothing without AXES_COOLOFF_TIME, as axes, and says so', async () => {
    await db.sql.query('truncate axes_accessattempt');
    await CASES[1]!.seed(db, 3, 0);
    const run = await runner(axesExpire).run({ task: axesExpire.name, trigger: 'cli' });
    expect(run.status).to.equal('succeeded');
    expect(run.result).to.deep.include({ deleted: {}, batches: 0 });
    expect(await rows('axes_accessattempt')).to.equal(3);
  });

  it('refuses settings that are not numbers, naming the variable', () => {
    expect(() =>
      validateTask('axesexpireattempts_hourly.ts', axesExpire, { AXES_COOLOFF_TIME: 'an hour' }),
    ).to.throw(/AXES_COOLOFF_TIME.*must be a number of hours/);
    expect(() =>
      validateTask('celerybackendcleanup_daily.ts', celeryCleanup, { CELERY_RESULT_EXPIRES: '0' }),
    ).to.throw(/CELERY_RESULT_EXPIRES.*positive number of seconds/);
  });

  it('doctor reports each task: tables, privileges, and what the next run deletes', async () => {
    const { code, stdout } = await runCli(['doctor', '--json'], {
      DATABASE_URL: db.url,
      CRON_SECRET_KEY: TEST_SECRET,
      AXES_COOLOFF_TIME: '1',
    });
    const checks = JSON.parse(stdout).checks as { name: string; verdict: string; message: string }[];
    const line = (name: string) => checks.find((check) => check.name === name);
    for (const c of CASES) {
      expect(line(`${c.task.name}: tables`)?.verdict, c.task.name).to.equal('ok');
      expect(line(`${c.task.name}: privileges`)?.message).to.match(/^role "postgres" has SELECT, DELETE/);
      expect(line(`${c.task.name}: rows`)?.verdict).to.equal('ok');
    }
    expect(line('celerybackendcleanup_daily: rows')?.message).to.match(
      /^\d+ task results and \d+ group results expired/,
    );
    expect(code, stdout).to.equal(0);
  });
});
