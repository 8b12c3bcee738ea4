import { expect } from 'chai';
import type pg from 'pg';
import type { AnyTask } from '../src/task.js';
import { AXES_DDL } from '../tasks/_axes/ddl.js';
import { CELERY_RESULTS_DDL } from '../tasks/_celery/ddl.js';
import { EXAMPLE_HISTORY_DDL } from '../tasks/_history/ddl.js';
import { KNOX_DDL } from '../tasks/_knox/ddl.js';
import { OAUTH2_DDL } from '../tasks/_oauth2/ddl.js';
import { PASSWORDRESET_DDL } from '../tasks/_passwordreset/ddl.js';
import { REVERSION_DDL } from '../tasks/_reversion/ddl.js';
import axesExpire from '../tasks/axesexpireattempts_hourly.js';
import axesLogs from '../tasks/axesresetlogs_daily.js';
import celeryCleanup from '../tasks/celerybackendcleanup_daily.js';
import cleanOldHistory from '../tasks/cleanoldhistory_daily.js';
import clearResetTokens from '../tasks/clearresetpasswordtokens_daily.js';
import clearTokens from '../tasks/cleartokens_daily.js';
import deleteRevisions from '../tasks/deleterevisions_daily.js';
import knoxExpired from '../tasks/knoxexpiredtokens_daily.js';
import {
  createDatabase,
  dropDatabase,
  everyRow,
  migratedDjangoDatabase,
  requireDjango,
  runTask,
  runUpstream,
  withClient,
} from './support/django.js';
import { seedOauth2 } from './support/oauth2-seed.js';

/** Each task's DDL with its tables (test/django/write-ddl.ts writes them). */
const DDL = [
  { sql: AXES_DDL, tables: ['axes_accessattempt', 'axes_accesslog', 'axes_accessfailurelog'] },
  {
    sql: CELERY_RESULTS_DDL,
    tables: [
      'django_celery_results_taskresult',
      'django_celery_results_groupresult',
      'django_celery_results_chordcounter',
    ],
  },
  {
    sql: OAUTH2_DDL,
    tables: [
      'oauth2_provider_application',
      'oauth2_provider_idtoken',
      'oauth2_provider_accesstoken',
      'oauth2_provider_refreshtoken',
      'oauth2_provider_grant',
    ],
  },
  { sql: REVERSION_DDL, tables: ['reversion_revision', 'reversion_version'] },
  { sql: EXAMPLE_HISTORY_DDL, tables: ['inventory_historicalitem'] },
  { sql: KNOX_DDL, tables: ['knox_authtoken'] },
  { sql: PASSWORDRESET_DDL, tables: ['django_rest_passwordreset_resetpasswordtoken'] },
];

/** Every column, constraint and index of the tables, as text: what two schemas must share to be the same. */
async function catalog(client: pg.Client, tables: string[]): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `select format('%s column %s %s %s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                   case when a.attnotnull then 'not null' else 'null' end, pg_get_expr(d.adbin, d.adrelid)) as line
       from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
       left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
      where c.relname = any($1)
     union all
     select format('%s constraint %s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
       from pg_constraint k join pg_class c on c.oid = k.conrelid where c.relname = any($1)
     union all
     select format('%s index %s', tablename, indexdef) from pg_indexes where tablename = any($1)
     union all
     select format('sequence %s %s', s.seqrelid::regclass, format_type(s.seqtypid, null))
       from pg_sequence s join pg_depend dep on dep.objid = s.seqrelid and dep.deptype = 'a'
       join pg_class c on c.oid = dep.refobjid where c.relname = any($1)
     order by 1`,
    [tables],
  );
  return rows.map((r) => r.line);
}

/**
 * Each task of the Django pack against its upstream command, on Debian's releases: a database
 * Django's `migrate` made (test/django), seeded with rows on both sides of each cutoff, copied
 * twice; upstream's command runs on one copy with Django's clock frozen at NOW, taskgate's task on
 * the other through the real runner with NOW as its clock; then every row of every table must be
 * the same.
 */
const NOW = new Date('2031-03-04T05:06:07.890Z');

/** A timestamp `offset` from NOW, as SQL: `at('-30 days')`, `at('-30 days -1 microsecond')`. */
const at = (offset: string) => `('${NOW.toISOString()}'::timestamptz + interval '${offset}')`;

describe("the Django pack leaves exactly the rows upstream's commands leave", function () {
  this.timeout(120_000);
  let django: { name: string; url: string };

  before(async function () {
    requireDjango(this);
    django = await migratedDjangoDatabase();
  });
  after(async () => {
    if (django) await dropDatabase(django.name);
  });

  /**
   * Seeds a copy of the migrated database, copies it twice, runs upstream on one and the task on
   * the other, and compares every row; gives the rows before and after, and the run.
   */
  async function compare(options: {
    seed: (client: pg.Client) => Promise<unknown>;
    upstream: string[];
    task: AnyTask;
    env?: Record<string, string>;
    params?: Record<string, unknown>;
  }) {
    // The seeded database is copied for upstream, then is taskgate's.
    const taskgate = await createDatabase(django.name);
    let upstream: { name: string; url: string } | undefined;
    try {
      await withClient(taskgate.url, options.seed);
      upstream = await createDatabase(taskgate.name);
      const seededRows = await everyRow(taskgate.url);
      await runUpstream(upstream.url, NOW, options.upstream, options.env);
      const run = await runTask(taskgate.url, `${options.task.name}.ts`, options.task, NOW, {
        env: options.env,
        params: { batchSize: 2, batchTargetMs: 0, ...options.params },
      });
      expect(run.status, run.error ?? '').to.equal('succeeded');
      const [upstreamRows, taskgateRows] = await Promise.all([
        everyRow(upstream.url),
        everyRow(taskgate.url),
      ]);
      for (const table of Object.keys(upstreamRows)) {
        expect(taskgateRows[table], `rows of ${table}`).to.deep.equal(upstreamRows[table]);
      }
      expect(Object.keys(taskgateRows)).to.deep.equal(Object.keys(upstreamRows));
      return { before: seededRows, after: taskgateRows, result: run.result as Record<string, unknown> };
    } finally {
      await dropDatabase(taskgate.name);
      if (upstream) await dropDatabase(upstream.name);
    }
  }

  /** The seed straddles the cutoff: upstream deleted some rows of `table` and kept some. */
  function straddles(
    rows: { before: Record<string, string[]>; after: Record<string, string[]> },
    table: string,
  ) {
    const before = rows.before[table]!.length;
    const after = rows.after[table]!.length;
    expect(after, `${table} kept rows`).to.be.greaterThan(0);
    expect(after, `${table} lost rows`).to.be.lessThan(before);
  }

  const accessRow = (table: string, time: string, i: number, extra = '') =>
    `insert into ${table} (user_agent, ip_address, username, http_accept, path_info, attempt_time${extra ? ', get_data, post_data, failures_since_start' : ''})
     values ('agent ${i}', ${i % 3 === 0 ? 'null' : `'10.0.0.${i}'`}, ${i % 2 === 0 ? 'null' : `'user${i}'`}, '*/*', '/login/', ${time}${extra})`;

  it("makes each task's tables in the development database exactly as Django's migrate does", async () => {
    const copy = await createDatabase(django.name);
    try {
      await withClient(copy.url, async (client) => {
        const tables = DDL.flatMap((module) => module.tables);
        const migrated = await catalog(client, tables);
        await client.query(`drop table ${tables.join(', ')} cascade`);
        for (const module of DDL) await client.query(module.sql);
        expect(await catalog(client, tables)).to.deep.equal(migrated);
        expect(migrated.length).to.be.greaterThan(100);
      });
    } finally {
      await dropDatabase(copy.name);
    }
  });

  it('axesresetlogs_daily: access logs at or before now - age days, as axes_reset_logs --age', async () => {
    const times = [
      '-30 days',
      '-30 days -1 microsecond',
      '-30 days +1 microsecond',
      '-400 days',
      '0 seconds',
      '-7 days -1 microsecond',
    ];
    for (const age of [30, 7]) {
      const rows = await compare({
        seed: async (c) => {
          for (const [i, time] of times.entries()) await c.query(accessRow('axes_accesslog', at(time), i));
          await c.query(
            `update axes_accesslog set logout_time = attempt_time + interval '1 hour' where id % 2 = 0`,
          );
        },
        upstream: ['axes_reset_logs', '--age', String(age)],
        task: axesLogs,
        params: { age },
      });
      straddles(rows, 'axes_accesslog');
    }
  });

  it('axesexpireattempts_hourly: attempts before now - AXES_COOLOFF_TIME (axes 5.39: strictly before), lock-outs lifted as axes lifts them', async () => {
    for (const cooloff of ['2', '0.5']) {
      const hours = cooloff === '2' ? '2 hours' : '30 minutes';
      const times = [
        `-${hours}`,
        `-${hours} -1 microsecond`,
        `-${hours} +1 microsecond`,
        '-10 days',
        '0 seconds',
      ];
      const rows = await compare({
        seed: async (c) => {
          for (const [i, time] of times.entries()) {
            await c.query(accessRow('axes_accessattempt', at(time), i, `, 'next=/', 'username=x', ${i + 3}`));
          }
          for (const [i, time] of times.entries()) await c.query(accessRow('axes_accesslog', at(time), i));
        },
        upstream: ['axes-expire-attempts'],
        task: axesExpire,
        env: { AXES_COOLOFF_TIME: cooloff, AXES_VERSION: '5.39.0' },
      });
      straddles(rows, 'axes_accessattempt');
      expect(rows.after.axes_accesslog).to.deep.equal(rows.before.axes_accesslog);
    }
  });

  it('celerybackendcleanup_daily: task and group results done strictly before now - result_expires, as celery.backend_cleanup', async () => {
    for (const expires of ['86400', '3600']) {
      const span = `${expires} seconds`;
      const times = [
        `-${span}`,
        `-${span} -1 microsecond`,
        `-${span} +1 microsecond`,
        '-90 days',
        '0 seconds',
      ];
      const rows = await compare({
        seed: async (c) => {
          for (const [i, time] of times.entries()) {
            await c.query(
              `insert into django_celery_results_taskresult
                 (task_id, status, content_type, content_encoding, result, date_done, traceback, meta,
                  task_args, task_kwargs, task_name, worker, date_created, periodic_task_name)
               values ('task-${i}', 'SUCCESS', 'application/json', 'utf-8', ${i % 2 ? "'42'" : 'null'}, ${at(time)},
                       null, null, ${i % 2 ? "'[1]'" : 'null'}, null, ${i % 3 ? "'app.add'" : 'null'}, null,
                       ${at(`${time} -1 minute`)}, null)`,
            );
            await c.query(
              `insert into django_celery_results_groupresult
                 (group_id, date_created, date_done, content_type, content_encoding, result)
               values ('group-${i}', ${at(`${time} -1 minute`)}, ${at(time)}, 'application/json', 'utf-8', ${i % 2 ? "'[]'" : 'null'})`,
            );
          }
          await c.query(
            `insert into django_celery_results_chordcounter (group_id, sub_tasks, count) values ('chord', '[]', 2)`,
          );
        },
        upstream: ['celery-backend-cleanup'],
        task: celeryCleanup,
        env: { CELERY_RESULT_EXPIRES: expires },
      });
      straddles(rows, 'django_celery_results_taskresult');
      straddles(rows, 'django_celery_results_groupresult');
      expect(rows.after.django_celery_results_chordcounter).to.have.length(1);
    }
  });

  /** A user, for the rows that point at one; gives its id. */
  const user = async (c: pg.Client, name: string) =>
    (
      await c.query(
        `insert into auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
         values ('!', false, $1, '', '', '', false, true, now()) returning id`,
        [name],
      )
    ).rows[0]!.id as number;

  it('cleanoldhistory_daily: historical records strictly before now - days in every historical table, as clean_old_history --auto', async () => {
    for (const days of [30, 7]) {
      const times = [
        `-${days} days`,
        `-${days} days -1 microsecond`,
        `-${days} days +1 microsecond`,
        '-900 days',
        '0 seconds',
      ];
      const rows = await compare({
        seed: async (c) => {
          const ada = await user(c, 'ada');
          await c.query(`insert into inventory_shelf (label) values ('top')`);
          await c.query(`insert into inventory_item (name, shelf_id) values ('lamp', 1)`);
          for (const [i, time] of times.entries()) {
            await c.query(
              `insert into inventory_historicalitem (id, name, history_date, history_change_reason, history_type, history_user_id, shelf_id)
               values (1, 'lamp ${i}', ${at(time)}, ${i % 2 ? "'moved'" : 'null'}, '${'+~-'[i % 3]}', ${i % 2 ? ada : 'null'}, ${i % 3 ? 1 : 'null'})`,
            );
            await c.query(
              `insert into inventory_note_log (id, text, history_date, history_change_reason, history_type, history_user_id)
               values (${i}, 'note ${i}', ${at(time)} + interval '1 microsecond', null, '+', null)`,
            );
          }
        },
        upstream: ['clean_old_history', '--auto', '--days', String(days)],
        task: cleanOldHistory,
        params: { days },
      });
      straddles(rows, 'inventory_historicalitem');
      straddles(rows, 'inventory_note_log');
    }
  });

  it('knoxexpiredtokens_daily: tokens whose expiry is strictly before now, never those without one, as knox deletes them at login', async () => {
    const rows = await compare({
      seed: async (c) => {
        const users = [await user(c, 'ada'), await user(c, 'grace')];
        const expiries = ['0 seconds', '-1 microsecond', '1 microsecond', '-30 days', '10 hours', null];
        for (const [i, expiry] of expiries.entries()) {
          await c.query(
            `insert into knox_authtoken (digest, created, user_id, expiry, token_key)
             values (md5('${i}') || md5('x${i}'), ${at('-40 days')}, $1, ${expiry === null ? 'null' : at(expiry)}, 'key${i}')`,
            [users[i % 2]],
          );
        }
      },
      upstream: ['knox-expired'],
      task: knoxExpired,
    });
    straddles(rows, 'knox_authtoken');
  });

  it('clearresetpasswordtokens_daily: reset tokens created at or before now - expiry hours, as clearresetpasswodtokens', async () => {
    for (const hours of ['24', '1.5']) {
      const span = hours === '24' ? '24 hours' : '90 minutes';
      const times = [
        `-${span}`,
        `-${span} -1 microsecond`,
        `-${span} +1 microsecond`,
        '-60 days',
        '0 seconds',
      ];
      const rows = await compare({
        seed: async (c) => {
          const ada = await user(c, 'ada');
          for (const [i, time] of times.entries()) {
            await c.query(
              `insert into django_rest_passwordreset_resetpasswordtoken (created_at, key, ip_address, user_agent, user_id)
               values (${at(time)}, 'key-${i}', ${i % 2 ? "'10.1.2.3'" : 'null'}, '', $1)`,
              [ada],
            );
          }
        },
        upstream: ['clearresetpasswodtokens'],
        task: clearResetTokens,
        env: { DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME: hours },
      });
      straddles(rows, 'django_rest_passwordreset_resetpasswordtoken');
    }
  });

  it("cleartokens_daily: django-oauth-toolkit 1.7's rules, in its order, with and without REFRESH_TOKEN_EXPIRE_SECONDS, as cleartokens", async () => {
    for (const expire of ['3600', '']) {
      const rows = await compare({
        seed: (c) => seedOauth2(c, NOW),
        upstream: ['cleartokens'],
        task: clearTokens,
        env: { OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS: expire, DJANGO_OAUTH_TOOLKIT_VERSION: '1.7.0' },
      });
      straddles(rows, 'oauth2_provider_accesstoken');
      straddles(rows, 'oauth2_provider_grant');
      if (expire) straddles(rows, 'oauth2_provider_refreshtoken');
      // 1.7 has no rule for ID tokens: every one stays.
      expect(rows.after.oauth2_provider_idtoken).to.deep.equal(rows.before.oauth2_provider_idtoken);
    }
  });

  it('deleterevisions_daily: revisions older than days, but the keep newest of each object, of the registered models, as deleterevisions', async () => {
    const seed = async (c: pg.Client) => {
      const ada = await user(c, 'ada');
      const ct = async (model: string) =>
        (
          await c.query(`select id from django_content_type where app_label = 'inventory' and model = $1`, [
            model,
          ])
        ).rows[0]!.id as number;
      const [item, shelf, note] = [await ct('item'), await ct('shelf'), await ct('note')];
      // Revisions by age; versions: [content type, object id, database] in each.
      const revisions: [string, [number, string, string][]][] = [
        [
          '-90 days',
          [
            [item, '1', 'default'],
            [item, '2', 'default'],
          ],
        ],
        [
          '-60 days',
          [
            [item, '1', 'default'],
            [shelf, '1', 'default'],
          ],
        ],
        [
          '-30 days -1 microsecond',
          [
            [item, '1', 'default'],
            [note, '1', 'default'],
          ],
        ],
        [
          '-30 days',
          [
            [item, '2', 'default'],
            [shelf, '1', 'default'],
          ],
        ],
        ['-30 days +1 microsecond', [[item, '1', 'default']]],
        ['-45 days', [[note, '1', 'default']]],
        ['-50 days', [[item, '3', 'other']]],
        ['-40 days', [[shelf, '2', 'default']]],
        [
          '-1 day',
          [
            [item, '1', 'default'],
            [item, '2', 'default'],
          ],
        ],
      ];
      for (const [i, [age, versions]] of revisions.entries()) {
        const { rows } = await c.query(
          `insert into reversion_revision (date_created, comment, user_id) values (${at(age)}, $1, $2) returning id`,
          [`revision ${i}`, i % 2 ? ada : null],
        );
        for (const [contentType, objectId, db] of versions) {
          await c.query(
            `insert into reversion_version (object_id, format, serialized_data, object_repr, content_type_id, revision_id, db)
             values ($1, 'json', '[]', $2, $3, $4, $5)`,
            [objectId, `object ${objectId}`, contentType, rows[0]!.id, db],
          );
        }
      }
    };
    const env = { REVERSION_MODELS: 'inventory.shelf,inventory.Item' };
    for (const [days, keep] of [
      [30, 0],
      [30, 1],
      [0, 2],
      [0, 0],
    ] as const) {
      const rows = await compare({
        seed,
        upstream: ['deleterevisions', '--days', String(days), '--keep', String(keep)],
        task: deleteRevisions,
        env,
        params: { days, keep },
      });
      straddles(rows, 'reversion_revision');
    }
  });
});
