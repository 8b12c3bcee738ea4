/**
 * The Django pack against upstream's own commands, on identical copies of one database.
 *
 *   npm run build && npm run bench:pack [-- --size 100000 --repeat 3 --tasks cleartokens_daily,...]
 *
 * For each task: a database Django's `migrate` made (test/django), seeded with `size` rows of the
 * task's tables, half of them due for deletion (old enough by a wide margin, so both sides agree
 * whatever the instant), is copied; on one copy upstream's command runs in Python
 * (test/django/frozen.py, at the current instant), on the other taskgate's compiled CLI
 * (`node dist/src/cli/main.js run <task>`, as an operator runs it). Each side is measured the same
 * way: the whole process, spawn to exit; its peak RSS (the kernel's high-water mark, ru_maxrss);
 * and its longest single transaction, sampled every 5 ms from pg_stat_activity on that copy. Both
 * must leave the same number of rows. Turns alternate, `repeat` rounds; medians.
 *
 * Needs Debian's Django packages (as the equality tests) and the TEST_DATABASE_URL-style server in
 * BENCH_DATABASE_URL (a user that may create databases); otherwise an embedded PostgreSQL.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../src/db/embedded.js';
import { initORM, migrate } from '../src/db/orm.js';
import { median, productionEnv, requireBuild, runCli } from './support.js';

const PROJECT = fileURLToPath(new URL('../test/django/', import.meta.url));
const PYTHON = '/usr/bin/python3';
const MB = 1024 * 1024;
const NO_TASKS = await mkdtemp(path.join(os.tmpdir(), 'taskgate-no-tasks-'));

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '3' },
    tasks: { type: 'string', default: '' },
  },
});
const size = Number(args.size.replace(/_/g, ''));
const repeat = Number(args.repeat);
if (!Number.isInteger(size) || size < 100 || !Number.isInteger(repeat) || repeat < 1) {
  console.error('--size must be a whole number of at least 100 and --repeat at least 1');
  process.exit(2);
}

/** Rows "due" are 400 days old (or expired a day ago), the others new or live for a day. */
const old = (share: string) =>
  `case when g % 2 = 0 then now() - interval '${share}' else now() + interval '1 day' end`;

interface Chore {
  task: string;
  upstream: string[];
  /** Settings both sides read (upstream's Django settings come from the same environment). */
  env?: Record<string, string>;
  params?: Record<string, unknown>;
  /** Fills the tables with n rows (half of them due), in SQL. */
  seed: string;
  /** The tables whose rows both sides must leave the same number of. */
  tables: string[];
}

const USER = `insert into auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
  values (1, '!', false, 'ada', '', '', '', false, true, now());`;

const CHORES: Chore[] = [
  {
    task: 'flushexpiredtokens_daily',
    upstream: ['flushexpiredtokens'],
    seed: `${USER}
      insert into token_blacklist_outstandingtoken (token, created_at, expires_at, user_id, jti)
        select repeat('x', 200) || g, now(), ${old('1 day')}, 1, 'jti' || g from generate_series(1, $1) g;
      insert into token_blacklist_blacklistedtoken (blacklisted_at, token_id)
        select now(), id from token_blacklist_outstandingtoken where id % 5 = 0;`,
    tables: ['token_blacklist_outstandingtoken', 'token_blacklist_blacklistedtoken'],
  },
  {
    task: 'clearsessions_daily',
    upstream: ['clearsessions'],
    seed: `insert into django_session select md5(g::text), repeat('e30', 100), ${old('1 day')} from generate_series(1, $1) g;`,
    tables: ['django_session'],
  },
  {
    task: 'cleartokens_daily',
    upstream: ['cleartokens'],
    env: { DJANGO_OAUTH_TOOLKIT_VERSION: '1.7.0', OAUTH2_PROVIDER_REFRESH_TOKEN_EXPIRE_SECONDS: '86400' },
    seed: `${USER}
      insert into oauth2_provider_application (id, client_id, redirect_uris, client_type, authorization_grant_type,
        client_secret, name, user_id, skip_authorization, created, updated, algorithm)
        values (1, 'client', '', 'confidential', 'password', '', 'app', 1, false, now(), now(), '');
      insert into oauth2_provider_accesstoken (token, expires, scope, application_id, user_id, created, updated)
        select 'at' || g, ${old('3 days')}, 'read', 1, 1, now(), now() from generate_series(1, $1) g;
      insert into oauth2_provider_refreshtoken (token, access_token_id, application_id, user_id, created, updated, revoked)
        select 'rt' || id, id, 1, 1, now(), now(), null from oauth2_provider_accesstoken where id % 4 = 0;
      insert into oauth2_provider_grant (code, expires, redirect_uri, scope, application_id, user_id, created, updated,
        code_challenge, code_challenge_method, nonce, claims)
        select 'code' || g, ${old('1 day')}, '', '', 1, 1, now(), now(), '', '', '', '' from generate_series(1, $1 / 4) g;`,
    tables: ['oauth2_provider_accesstoken', 'oauth2_provider_refreshtoken', 'oauth2_provider_grant'],
  },
  {
    task: 'axesresetlogs_daily',
    upstream: ['axes_reset_logs', '--age', '30'],
    seed: `insert into axes_accesslog (user_agent, ip_address, username, http_accept, path_info, attempt_time)
      select 'agent', '10.0.0.1', 'user' || g, '*/*', '/login/', ${old('400 days')} from generate_series(1, $1) g;`,
    tables: ['axes_accesslog'],
  },
  {
    task: 'axesexpireattempts_hourly',
    upstream: ['axes-expire-attempts'],
    env: { AXES_COOLOFF_TIME: '1', AXES_VERSION: '5.39.0' },
    seed: `insert into axes_accessattempt (user_agent, ip_address, username, http_accept, path_info, attempt_time,
        get_data, post_data, failures_since_start)
      select 'agent', '10.0.0.1', 'user' || g, '*/*', '/login/', ${old('400 days')}, '', '', 3 from generate_series(1, $1) g;`,
    tables: ['axes_accessattempt'],
  },
  {
    task: 'cleanoldhistory_daily',
    upstream: ['clean_old_history', '--auto', '--days', '30'],
    seed: `insert into inventory_historicalitem (id, name, history_date, history_type)
      select g, 'item ' || g, ${old('400 days')}, '~' from generate_series(1, $1) g;`,
    tables: ['inventory_historicalitem'],
  },
  {
    task: 'deleterevisions_daily',
    upstream: ['deleterevisions', '--days', '30'],
    env: { REVERSION_MODELS: 'inventory.item,inventory.shelf' },
    params: { days: 30 },
    seed: `insert into reversion_revision (id, date_created, comment) select g, ${old('400 days')}, '' from generate_series(1, $1 / 2) g;
      insert into reversion_version (object_id, format, serialized_data, object_repr, content_type_id, revision_id, db)
        select (g % 1000)::text, 'json', repeat('x', 100), 'item',
               (select id from django_content_type where app_label = 'inventory' and model = case when g % 2 = 0 then 'item' else 'shelf' end),
               (g + 1) / 2, 'default'
          from generate_series(1, $1) g;`,
    tables: ['reversion_revision', 'reversion_version'],
  },
  {
    task: 'celerybackendcleanup_daily',
    upstream: ['celery-backend-cleanup'],
    seed: `insert into django_celery_results_taskresult (task_id, status, content_type, content_encoding, result, date_done, date_created)
      select 'task' || g, 'SUCCESS', 'application/json', 'utf-8', '42', ${old('400 days')}, now() from generate_series(1, $1) g;`,
    tables: ['django_celery_results_taskresult'],
  },
  {
    task: 'knoxexpiredtokens_daily',
    upstream: ['knox-expired'],
    seed: `${USER}
      insert into knox_authtoken (digest, created, user_id, expiry, token_key)
        select md5(g::text) || md5('x' || g), now(), 1, ${old('1 day')}, left(md5(g::text), 8) from generate_series(1, $1) g;`,
    tables: ['knox_authtoken'],
  },
  {
    task: 'clearresetpasswordtokens_daily',
    upstream: ['clearresetpasswodtokens'],
    seed: `${USER}
      insert into django_rest_passwordreset_resetpasswordtoken (created_at, key, ip_address, user_agent, user_id)
        select ${old('400 days')}, md5(g::text), null, '', 1 from generate_series(1, $1) g;`,
    tables: ['django_rest_passwordreset_resetpasswordtoken'],
  },
];

interface Measured {
  ms: number;
  peakRssMb: number;
  longestTxMs: number;
  left: number;
}

function urlFor(server: string, database: string): string {
  const url = new URL(server);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * The longest transaction seen on `database` while `work` runs: pg_stat_activity sampled every
 * 5 ms (a transaction shorter than that may be missed, none is overestimated by more than it).
 */
async function longestTransaction<T>(adminUrl: string, database: string, work: () => Promise<T>) {
  const sampler = new pg.Client({ connectionString: adminUrl });
  await sampler.connect();
  let longest = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await sampler.query(
        `select coalesce(max(extract(epoch from clock_timestamp() - xact_start) * 1000), 0)::float8 as ms
           from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and xact_start is not null`,
        [database],
      );
      longest = Math.max(longest, rows[0]!.ms as number);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    return { result: await work(), longestTxMs: Math.round(longest) };
  } finally {
    running = false;
    await loop;
    await sampler.end();
  }
}

function upstream(url: string, chore: Chore): Promise<{ ms: number; peakRssMb: number }> {
  const peakFile = path.join(os.tmpdir(), `taskgate-upstream-peak-${randomBytes(4).toString('hex')}`);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, ['frozen.py', new Date().toISOString(), ...chore.upstream], {
      cwd: PROJECT,
      env: { PATH: process.env.PATH, ...chore.env, DJANGO_DATABASE_URL: url, BENCH_PEAK_RSS_FILE: peakFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      if (code !== 0) return reject(new Error(`${chore.upstream.join(' ')} exited ${code}: ${stderr}`));
      const peak = Number(readFileSync(peakFile, 'utf8'));
      rm(peakFile, { force: true }).finally(() => resolve({ ms, peakRssMb: Math.round(peak / MB) }));
    });
  });
}

async function taskgate(url: string, chore: Chore): Promise<{ ms: number; peakRssMb: number }> {
  const params = chore.params ? ['--params', JSON.stringify(chore.params)] : [];
  // The built-in tasks only: in a clone, tasks/ would otherwise be taken for the project's own folder.
  const run = await runCli(
    ['run', chore.task, '--json', ...params],
    productionEnv(url, { ...chore.env, TASKS_DIR: NO_TASKS }),
  );
  if (run.code !== 0) throw new Error(`taskgate run ${chore.task} exited ${run.code}: ${run.stderr}`);
  const record = JSON.parse(run.stdout) as { status: string; error?: string };
  if (record.status !== 'succeeded') throw new Error(`${chore.task} ${record.status}: ${record.error}`);
  return { ms: run.ms, peakRssMb: run.peakRssMb };
}

function python(args: string[], env: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(
      PYTHON,
      args,
      { cwd: PROJECT, env: { PATH: process.env.PATH, ...env } },
      (error, _out, stderr) => (error ? reject(new Error(stderr || error.message)) : resolve()),
    ),
  );
}

async function main() {
  requireBuild();
  const chosen = args.tasks ? args.tasks.split(',').map((t) => t.trim()) : CHORES.map((c) => c.task);
  let embedded: EmbeddedDatabase | undefined;
  let tmp: string | undefined;
  let server = process.env.BENCH_DATABASE_URL;
  if (!server) {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'taskgate-bench-'));
    embedded = await startEmbeddedDatabase({ dataDir: path.join(tmp, 'pg'), persistent: false, fast: true });
    server = embedded.adminUrl;
  }
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  const created = new Set<string>();
  const create = async (name: string, template?: string) => {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}${template ? ` template ${template}` : ''}`);
    created.add(name);
  };
  const drop = async (name: string) => {
    await admin.query(`drop database if exists ${name} with (force)`);
    created.delete(name);
  };
  const { rows: banner } = await admin.query('select version() as v');
  console.log(`server: ${embedded ? 'embedded PostgreSQL' : 'BENCH_DATABASE_URL'}, ${banner[0].v}`);
  console.log(
    `machine: ${os.cpus().length} cpus, node ${process.version}; ${size.toLocaleString('en-US')} rows a task, ${repeat} rounds\n`,
  );

  const migrated = 'taskgate_bench_django';
  const lines: string[] = [];
  try {
    await create(migrated);
    await python(['manage.py', 'migrate', '-v', '0'], { DJANGO_DATABASE_URL: urlFor(server, migrated) });
    const orm = await initORM(urlFor(server, migrated));
    await migrate(orm).finally(() => orm.close(true));
    for (const chore of CHORES.filter((c) => chosen.includes(c.task))) {
      const seeded = `taskgate_bench_${chore.task}`;
      await create(seeded, migrated);
      await withClient(urlFor(server, seeded), async (c) => {
        for (const statement of chore.seed.split(/;\s*\n/).filter((s) => s.trim())) {
          await c.query(statement, statement.includes('$1') ? [size] : []);
        }
        await c.query('analyze');
      });
      const before = await withClient(urlFor(server, seeded), (c) => counts(c, chore.tables));
      const results: Record<'upstream' | 'taskgate', Measured[]> = { upstream: [], taskgate: [] };
      for (let round = 0; round < repeat; round++) {
        const order =
          round % 2 === 0 ? (['upstream', 'taskgate'] as const) : (['taskgate', 'upstream'] as const);
        for (const side of order) {
          const copy = `${seeded}_${side}`;
          await create(copy, seeded);
          await admin.query('checkpoint').catch(() => undefined);
          const url = urlFor(server, copy);
          const { result, longestTxMs } = await longestTransaction(server, copy, () =>
            side === 'upstream' ? upstream(url, chore) : taskgate(url, chore),
          );
          const left = await withClient(url, (c) => counts(c, chore.tables));
          await drop(copy);
          results[side].push({ ...result, longestTxMs, left });
        }
      }
      await drop(seeded);
      const lefts = new Set([...results.upstream, ...results.taskgate].map((m) => m.left));
      if (lefts.size !== 1)
        throw new Error(`${chore.task}: the two sides left different numbers of rows: ${[...lefts]}`);
      const m = (side: 'upstream' | 'taskgate', key: keyof Measured) =>
        median(results[side].map((r) => r[key]));
      const line =
        `| ${chore.task} | ${(before - [...lefts][0]!).toLocaleString('en-US')} of ${before.toLocaleString('en-US')} | ` +
        `${Math.round(m('upstream', 'ms'))} / ${Math.round(m('taskgate', 'ms'))} ms (${(m('upstream', 'ms') / m('taskgate', 'ms')).toFixed(2)}x) | ` +
        `${m('upstream', 'peakRssMb')} / ${m('taskgate', 'peakRssMb')} MB (${(m('upstream', 'peakRssMb') / m('taskgate', 'peakRssMb')).toFixed(2)}x) | ` +
        `${Math.max(...results.upstream.map((r) => r.longestTxMs))} / ${Math.max(...results.taskgate.map((r) => r.longestTxMs))} ms |`;
      console.log(line);
      lines.push(line);
    }
  } finally {
    for (const name of [...created]) await drop(name).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }
  console.log(
    '\n| task | rows deleted | whole process, upstream / taskgate (speed-up) | peak RSS, upstream / taskgate (ratio) | longest transaction, upstream / taskgate |',
  );
  console.log('| --- | --- | --- | --- | --- |');
  for (const line of lines) console.log(line);
}

async function counts(client: pg.Client, tables: string[]): Promise<number> {
  let total = 0;
  for (const table of tables)
    total += Number((await client.query(`select count(*) as n from ${table}`)).rows[0]!.n);
  return total;
}

await main();
process.exit(0);
