import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadRegistry } from '../../src/core/registry.js';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../../src/db/embedded.js';
import { initORM, migrate } from '../../src/db/orm.js';

/**
 * Mocha's global setup: one PostgreSQL for the whole run (TEST_DATABASE_URL, or an embedded one on
 * a free port) and a migrated template database, with the tasks' tables, that each test file
 * copies (see database.ts).
 */
export interface TestCluster {
  adminUrl: string;
  template: string;
  /** Every database a test file makes starts with this; the teardown drops whatever is left. */
  prefix: string;
}

/**
 * How the cluster reaches the test files: an environment variable, because under `mocha --parallel`
 * the files run in worker processes that inherit the environment but not this module's state.
 */
const CLUSTER_VARIABLE = 'TASKGATE_TEST_CLUSTER';

let embedded: EmbeddedDatabase | undefined;
let tmpDir: string | undefined;

export function testCluster(): TestCluster {
  const value = process.env[CLUSTER_VARIABLE];
  if (!value) throw new Error('the test cluster is not started (run the tests with mocha)');
  return JSON.parse(value) as TestCluster;
}

export function urlFor(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

export async function adminQuery(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: testCluster().adminUrl });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

/**
 * What the suites run besides Node: the workflow's steps need bash, curl and jq; the fault tests a
 * real PgBouncer; the status page's browser test Debian's chromium.
 */
const TOOLS = ['bash', 'curl', 'jq', 'pgbouncer', 'shellcheck', 'chromium'] as const;

function onPath(tool: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.some((dir) => dir && existsSync(path.join(dir, tool)));
}

/** Says which tools are missing, loudly; on CI (which installs them) a missing one fails the run. */
function checkTools(): void {
  const missing = TOOLS.filter((tool) => !onPath(tool));
  if (missing.length === 0) return;
  const message = `missing test tools: ${missing.join(', ')} (apt-get install ${missing.join(' ')}); the suites that need them are skipped`;
  if (process.env.CI) throw new Error(message.replace(/; the suites.*/, ': CI never skips their suites'));
  process.stderr.write(`\n!!! ${message} !!!\n\n`);
}

/**
 * The Django pack's equality tests run upstream's commands with Debian's Python packages
 * (`.ci/run` installs them): python3-django and each app's package.
 */
export const PYTHON = '/usr/bin/python3';
const DJANGO_MODULES = [
  'django',
  'psycopg2',
  'rest_framework_simplejwt',
  'oauth2_provider',
  'axes',
  'simple_history',
  'reversion',
  'django_celery_results',
  'celery',
];
const DJANGO_PACKAGES =
  'python3-django python3-psycopg2 python3-djangorestframework-simplejwt python3-django-oauth-toolkit ' +
  'python3-django-axes python3-django-simple-history python3-django-reversion python3-django-celery-results';
/** '1' when they are installed: the test files, in worker processes, read it (django.ts, requireDjango). */
export const DJANGO_VARIABLE = 'TASKGATE_TEST_DJANGO';

async function checkDjango(): Promise<void> {
  const problem = existsSync(PYTHON)
    ? await new Promise<string | null>((resolve) =>
        execFile(PYTHON, ['-c', `import ${DJANGO_MODULES.join(', ')}`], (error, _out, stderr) =>
          resolve(error ? (stderr.trim().split('\n').pop() ?? error.message) : null),
        ),
      )
    : `${PYTHON} is missing`;
  process.env[DJANGO_VARIABLE] = problem ? '0' : '1';
  if (!problem) return;
  const message = `Django for the pack's equality tests: ${problem} (apt-get install ${DJANGO_PACKAGES}); those suites are skipped`;
  if (process.env.CI) throw new Error(message.replace(/; those suites.*/, ': CI never skips them'));
  process.stderr.write(`\n!!! ${message} !!!\n\n`);
}

export async function mochaGlobalSetup(): Promise<void> {
  checkTools();
  await checkDjango();
  const started = performance.now();
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    tmpDir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-test-'));
    embedded = await startEmbeddedDatabase({
      dataDir: path.join(tmpDir, 'pg'),
      persistent: false,
      fast: true,
    });
    adminUrl = embedded.adminUrl;
  }
  const template = `taskgate_template_${process.pid}`;
  const cluster: TestCluster = { adminUrl, template, prefix: `taskgate_test_${process.pid}_` };
  process.env[CLUSTER_VARIABLE] = JSON.stringify(cluster);
  await adminQuery(`drop database if exists ${template}`);
  await adminQuery(`create database ${template}`);
  const orm = await initORM(urlFor(adminUrl, template));
  try {
    await migrate(orm);
    // The template is taskgate's own, like the embedded development database: it gets the tables
    // taskgate's tasks work on (simplejwt's) from the tasks themselves, as `npm start` does.
    const pool = orm.em.getConnection().getKnex().client;
    const client = await pool.acquireConnection();
    try {
      for (const task of (await loadRegistry()).list()) await task.definition.prepareDevDatabase?.(client);
    } finally {
      await pool.releaseConnection(client);
    }
  } finally {
    await orm.close(true);
  }
  const where = embedded ? 'embedded PostgreSQL' : 'TEST_DATABASE_URL';
  process.stderr.write(`test database: ${where}, ready in ${Math.round(performance.now() - started)} ms\n`);
}

export async function mochaGlobalTeardown(): Promise<void> {
  if (process.env[CLUSTER_VARIABLE]) {
    const cluster = testCluster();
    const { rows } = await adminQuery('select datname from pg_database where starts_with(datname, $1)', [
      cluster.prefix,
    ]).catch(() => ({ rows: [] as { datname: string }[] }));
    for (const name of [...rows.map((r) => r.datname), cluster.template]) {
      await adminQuery(`drop database if exists ${name} with (force)`).catch(() => undefined);
    }
    delete process.env[CLUSTER_VARIABLE];
  }
  await embedded?.stop();
  if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
}
