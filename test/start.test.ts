import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'chai';
import { freePort } from '../src/db/embedded.js';
import { CLI, ROOT, runCli, WORKDIR } from './support/cli.js';
import { eventually } from './support/eventually.js';
import { groupAlive, processesMatching } from './support/processes.js';
import { TEST_SECRET } from './support/runner.js';

interface Started {
  npm: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  base: string;
}

/**
 * `npm start` as a developer runs it, in a folder of its own (package.json, and links to src/,
 * tasks/ and node_modules/), so its embedded PostgreSQL keeps its data there and not in the
 * clone's .data/. npm leads a process group of its own, as in a terminal.
 */
async function npmStart(folder: string): Promise<Started> {
  const port = await freePort();
  const npm = spawn('npm', ['start'], {
    cwd: folder,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'development',
      PORT: String(port),
      CRON_SECRET_KEY: TEST_SECRET,
    },
  });
  let output = '';
  npm.stdout!.on('data', (chunk) => (output += chunk));
  npm.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    npm.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  for (let waited = 0; !output.includes('taskgate is listening'); waited += 50) {
    if (npm.exitCode !== null || waited > 60_000) {
      if (groupAlive(npm.pid!)) process.kill(-npm.pid!, 'SIGKILL');
      throw new Error(`npm start did not start:\n${output}`);
    }
    await delay(50);
  }
  return { npm, output: () => output, exited, base: `http://127.0.0.1:${port}` };
}

describe('npm start', function () {
  this.timeout(90_000);
  let folder: string;
  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'taskgate-start-'));
    // As root, the embedded PostgreSQL runs as `postgres`, which must reach the data folder.
    await chmod(folder, 0o755);
    await copyFile(path.join(ROOT, 'package.json'), path.join(folder, 'package.json'));
    for (const name of ['src', 'tasks', 'node_modules', 'taskgate.config.json'])
      await symlink(path.join(ROOT, name), path.join(folder, name));
  });
  let started: Started | undefined;
  afterEach(() => {
    // Whatever a failed test left behind (an orphaned node still holds npm's process group).
    if (started && groupAlive(started.npm.pid!)) process.kill(-started.npm.pid!, 'SIGKILL');
    started?.npm.stdout?.destroy();
    started?.npm.stderr?.destroy();
    started = undefined;
  });
  after(async () => {
    for (const line of processesMatching(folder)) process.kill(Number.parseInt(line, 10), 'SIGKILL');
    await rm(folder, { recursive: true, force: true });
  });

  const cases: [string, NodeJS.Signals, 'npm' | 'group'][] = [
    ['Ctrl-C in a terminal (SIGINT to the whole process group)', 'SIGINT', 'group'],
    ['SIGINT to the npm process alone', 'SIGINT', 'npm'],
    ['SIGTERM to the npm process alone', 'SIGTERM', 'npm'],
  ];
  for (const [what, signal, target] of cases) {
    it(`drains and exits 0 on ${what}, with the embedded PostgreSQL stopped and no process left`, async () => {
      started = await npmStart(folder);
      const health = await fetch(`${started.base}/healthz`);
      expect(health.status).to.equal(200);
      // The embedded PostgreSQL of this folder runs while taskgate serves.
      expect(processesMatching(path.join(folder, '.data'))).to.not.deep.equal([]);
      const sent = performance.now();
      const { npm, exited, output } = started;
      if (target === 'group') process.kill(-npm.pid!, signal);
      else npm.kill(signal);
      const exit = await Promise.race([exited, delay(30_000).then(() => null)]);
      expect(exit, output()).to.not.equal(null);
      expect(exit, output()).to.include({ code: 0, signal: null });
      expect(output()).to.include('"shutting down"').and.include('"stopped"');
      expect(output()).to.not.include('second signal');
      expect(exit!.at - sent).to.be.below(10_000);
      // What npm started goes with it: on a busy machine the last of PostgreSQL's processes can
      // take a moment after npm's exit to be gone, never seconds.
      await eventually(async () => !groupAlive(npm.pid!), 3_000).catch(() => {
        throw new Error('a process of npm start is still running 3 s after npm exited');
      });
      expect(processesMatching(folder)).to.deep.equal([]);
      expect(
        await readFile(path.join(folder, '.data/postgres/postmaster.pid'), 'utf8').catch(() => null),
      ).to.equal(null);
    });
  }
});

describe('taskgate serve on a port in use', () => {
  let taken: Server;
  let port: number;
  /** Stands where the production DATABASE_URL points: counts who connects (nobody should). */
  let database: Server;
  let databasePort: number;
  let connections = 0;
  before(async () => {
    port = await freePort();
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(port, '127.0.0.1', resolve));
    databasePort = await freePort();
    database = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => database.listen(databasePort, '127.0.0.1', resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    await new Promise<void>((resolve) => database.close(() => resolve()));
  });

  // How fast it exits is measured by bench/start.ts; here, that it does nothing slow first.
  for (const env of ['development', 'production'] as const) {
    it(`prints one line naming the port and exits 1 before it opens a database (${env})`, async () => {
      connections = 0;
      const result = await runCli(['serve'], {
        NODE_ENV: env,
        HOST: '127.0.0.1',
        PORT: String(port),
        CRON_SECRET_KEY: TEST_SECRET,
        ...(env === 'production' ? { DATABASE_URL: `postgres://nobody@127.0.0.1:${databasePort}/none` } : {}),
      });
      expect(result.code, result.stderr).to.equal(1);
      expect(result.stderr).to.equal(
        `taskgate: port ${port} on 127.0.0.1 is already in use: stop what listens there or set PORT\n`,
      );
      expect(connections, 'connections to the database').to.equal(0);
      // No embedded PostgreSQL was started for it.
      expect(result.stdout).to.not.include('embedded PostgreSQL');
    });
  }
});

describe('the tests while the quick start runs', () => {
  it('spawn serve on no fixed port: with port 3000 held (as the quick start holds it), serve gets on to its database', async () => {
    // Held here, or already held by a server of the developer's: either way 3000 is taken.
    const holder = createServer();
    await new Promise<void>((resolve) => {
      holder.once('error', () => resolve());
      holder.listen(3000, '127.0.0.1', resolve);
    });
    try {
      const result = await runCli(['serve'], {
        HOST: '127.0.0.1',
        CRON_SECRET_KEY: TEST_SECRET,
        DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/none`,
        DATABASE_STARTUP_TIMEOUT_MS: '0',
      });
      expect(result.code).to.equal(1);
      expect(result.stderr).not.to.include('already in use');
      expect(result.stderr).to.match(/^taskgate: the database could not be reached/);
    } finally {
      if (holder.listening) await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  });
});

describe('taskgate --version', () => {
  it('prints the version of package.json and exits 0', async () => {
    const { version } = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8'));
    const result = await runCli(['--version']);
    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal(`${version}\n`);
  });
});

describe('taskgate serve stopped while it starts', () => {
  /** The real `taskgate serve` in production, waiting for a database that does not answer. */
  async function serveWaiting(databaseUrl: string, extra: Record<string, string> = {}) {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve'], {
      cwd: WORKDIR,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        CRON_SECRET_KEY: TEST_SECRET,
        DATABASE_URL: databaseUrl,
        ...extra,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout!.on('data', (chunk) => (output += chunk));
    child.stderr!.on('data', (chunk) => (output += chunk));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
      (resolve) => child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
    );
    return { child, output: () => output, exited };
  }

  let hanging: Server | undefined;
  after(() => (hanging ? new Promise<void>((resolve) => hanging!.close(() => resolve())) : undefined));

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`exits 0 at once on ${signal} while the database refuses connections and is being retried`, async () => {
      const { child, output, exited } = await serveWaiting(
        `postgres://nobody@127.0.0.1:${await freePort()}/none`,
      );
      // The fourth try comes 2 s after the third fails: the stop comes in that wait.
      await eventually(async () => output().includes(`"attempt":3`), 20_000);
      const sent = performance.now();
      child.kill(signal);
      const exit = await Promise.race([exited, delay(8_000).then(() => null)]);
      if (!exit) child.kill('SIGKILL');
      expect(exit, output()).to.include({ code: 0, signal: null });
      // Before the next try and far from the platform's SIGKILL (10 s under Docker).
      expect(exit!.at - sent, output()).to.be.below(1_500);
      expect(output()).to.include('"starting":true').and.include('"shutting down"').and.include('"stopped"');
      expect(output()).to.not.include(`"attempt":4`);
      expect(output()).to.not.include('taskgate is listening');
    });
  }

  it('exits 0 at once on SIGTERM while a connection to the database is still being opened', async () => {
    // A server that accepts and never answers: PostgreSQL's start-up packet waits for the connect
    // time-out (30 s here), which the stop does not wait for.
    const sockets: import('node:net').Socket[] = [];
    hanging = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => hanging!.listen(0, '127.0.0.1', resolve));
    const port = (hanging.address() as { port: number }).port;
    const { child, output, exited } = await serveWaiting(`postgres://nobody@127.0.0.1:${port}/none`, {
      DATABASE_CONNECT_TIMEOUT_MS: '30000',
    });
    await eventually(async () => sockets.length > 0, 20_000);
    const sent = performance.now();
    child.kill('SIGTERM');
    const exit = await Promise.race([exited, delay(8_000).then(() => null)]);
    if (!exit) child.kill('SIGKILL');
    for (const socket of sockets) socket.destroy();
    expect(exit, output()).to.include({ code: 0, signal: null });
    expect(exit!.at - sent, output()).to.be.below(1_500);
    expect(output()).to.include('"shutting down"').and.include('"stopped"');
  });
});
