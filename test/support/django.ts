import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { loadConfig } from '../../src/config.js';
import { Registry, validateTask } from '../../src/core/registry.js';
import { Runner } from '../../src/core/runner.js';
import { initORM, migrate } from '../../src/db/orm.js';
import { createLogger } from '../../src/logger.js';
import type { AnyTask } from '../../src/task.js';
import { testDb } from './database.js';
import { adminQuery, DJANGO_VARIABLE, PYTHON, testCluster, urlFor } from './global.js';
import { TEST_SECRET } from './secrets.js';

/**
 * The Django project under test/django: a database it has migrated, upstream's chores run in it
 * with Django's clock frozen (frozen.py), and taskgate's tasks run through the real runner on a
 * copy, with the same instant as `now`.
 */
const PROJECT = fileURLToPath(new URL('../django/', import.meta.url));

/** Skips the suite, loudly, where Python and Django are missing (the global setup said so; CI never skips). */
export function requireDjango(context: Mocha.Context): void {
  if (process.env[DJANGO_VARIABLE] === '1') return;
  context.skip();
}

function python(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      PYTHON,
      args,
      { cwd: PROJECT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: 120_000 },
      (error, stdout, stderr) =>
        error
          ? reject(new Error(`python3 ${args.join(' ')} failed: ${stderr || error.message}`))
          : resolve(stdout),
    ),
  );
}

export async function createDatabase(template?: string): Promise<{ name: string; url: string }> {
  const { adminUrl, prefix } = testCluster();
  const name = `${prefix}dj_${randomBytes(5).toString('hex')}`;
  await adminQuery(`create database ${name}${template ? ` template ${template}` : ''}`);
  return { name, url: urlFor(adminUrl, name) };
}

export const dropDatabase = (name: string) => adminQuery(`drop database if exists ${name} with (force)`);

/** A database Django's `migrate` has made, with taskgate's own schema migrated beside it. */
export async function migratedDjangoDatabase(): Promise<{ name: string; url: string }> {
  const db = await createDatabase();
  await python(['manage.py', 'migrate', '-v', '0'], { DJANGO_DATABASE_URL: db.url });
  const orm = await initORM(db.url);
  await migrate(orm).finally(() => orm.close(true));
  return db;
}

/** Runs an upstream chore (a manage.py command, or one of frozen.py's) at `now`, with `settings` in its environment. */
export function runUpstream(url: string, now: Date, chore: string[], settings: Record<string, string> = {}) {
  return python(['frozen.py', now.toISOString(), ...chore], { ...settings, DJANGO_DATABASE_URL: url });
}

/** Runs a task through the runner, its settings from `env`, with `now` as its clock. */
export async function runTask(
  url: string,
  file: string,
  task: AnyTask,
  now: Date,
  options: { env?: Record<string, string>; params?: Record<string, unknown> } = {},
) {
  const env = options.env ?? {};
  const sql = testDb(url);
  try {
    const runner = new Runner({
      db: sql,
      registry: new Registry([validateTask(file, task, env)]),
      logger: createLogger({ level: 'silent', pretty: false }),
      config: loadConfig({ NODE_ENV: 'test', DATABASE_URL: url, CRON_SECRET_KEY: TEST_SECRET, ...env }),
      now: () => now,
    });
    return await runner.run({ task: task.name, params: options.params, trigger: 'cli' });
  } finally {
    await sql.close();
  }
}

/** Every row of every table of the public schema, each table's rows as sorted text. */
export async function everyRow(url: string): Promise<Record<string, string[]>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      `select quote_ident(tablename) as name from pg_tables where schemaname = 'public' order by tablename`,
    );
    const all: Record<string, string[]> = {};
    for (const { name } of tables) {
      const { rows } = await client.query<{ row: string }>(
        `select t::text as row from ${name} as t order by 1`,
      );
      all[name] = rows.map((r) => r.row);
    }
    return all;
  } finally {
    await client.end();
  }
}

/** Runs SQL on a database, one connection, then closes it. */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
