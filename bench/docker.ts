/**
 * `npx tsx bench/docker.ts`: the image as the Dockerfile builds it, on the Docker engine at hand,
 * containers on the host's network (as test/docker.test.ts runs them):
 * - build time, cold (`--no-cache`) and after a change to a task (the layers before it reused);
 * - the image's size as growth over its base (`node:24-bookworm-slim`);
 * - `docker run` to the first /healthz 200 on a migrated database;
 * - `docker stop` time while starting (the database refused and retried), idle, and during a run
 *   (a flush waiting on a lock the "application" holds).
 * The baseline, measured in the same run: a bare Node.js HTTP server in the base image, started
 * and stopped the same way (what the engine and Node cost before taskgate does anything).
 *
 * BENCH_DATABASE_URL: a PostgreSQL to use (a database there is created and dropped); unset, an
 * embedded PostgreSQL. BENCH_STARTS: starts of each (default 5). BENCH_BUILD=0 skips the builds
 * and measures the image last built here (taskgate-bench:latest). BENCH_BEFORE=<commit>: the same
 * builds (alternating with this one's), the size and a stop while starting for that commit's
 * Dockerfile too. BENCH_BUILD_ROUNDS: builds after a change to a task, of each (default 3).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import pg from 'pg';
import { freePort, loadLine, median, openBenchDatabase, ROOT } from './support.js';

const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const IMAGE = 'taskgate-bench:latest';
const BEFORE_IMAGE = 'taskgate-bench:before';
const BUILD_ROUNDS = Number(process.env.BENCH_BUILD_ROUNDS ?? 3);
const BASE = 'node:24-bookworm-slim';
const SECRET = randomBytes(32).toString('hex');
const MIB = 1024 * 1024;
const BARE = `const s = require('node:http').createServer((q, r) => r.end('ok')).listen(process.env.PORT);
process.on('SIGTERM', () => s.close(() => process.exit(0)));`;

function docker(args: string[]): string {
  return execFileSync('docker', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * MIB,
  }).trim();
}

async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

/**
 * The files of a clone (tracked and new, not ignored), copied to a folder of the benchmark's own;
 * or those of a commit.
 */
async function cloneContext(commit?: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'taskgate-bench-docker-'));
  if (commit) {
    execFileSync('sh', ['-c', `git archive ${commit} | tar -x -C ${dir}`], { cwd: ROOT });
    return dir;
  }
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter(Boolean);
  for (const file of files) await cp(path.join(ROOT, file), path.join(dir, file)).catch(() => undefined);
  return dir;
}

async function untilHealthy(port: number, until: number): Promise<void> {
  for (;;) {
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (performance.now() > until) throw new Error('no /healthz 200 within 60 s');
    await delay(10);
  }
}

let made = 0;
/** `docker run -d` on the host's network; resolves once /healthz answers 200 (unless `wait` is false). */
async function start(
  image: string,
  env: Record<string, string>,
  command: string[] = [],
  wait = true,
): Promise<{ name: string; port: number; ms: number }> {
  const port = await freePort();
  const name = `taskgate-bench-${process.pid}-${++made}`;
  const flags = Object.entries({ PORT: String(port), ...env }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  const started = performance.now();
  docker(['run', '-d', '--name', name, '--network', 'host', ...flags, image, ...command]);
  if (wait) await untilHealthy(port, started + 60_000);
  return { name, port, ms: performance.now() - started };
}

/** `docker stop` (Docker's default 10 s time-out); its time and the exit code. */
function stop(name: string): { ms: number; exitCode: number } {
  const started = performance.now();
  docker(['stop', name]);
  const ms = performance.now() - started;
  const exitCode = Number(docker(['inspect', '--format', '{{.State.ExitCode}}', name]));
  docker(['rm', '-v', name]);
  return { ms, exitCode };
}

async function untilLogged(name: string, text: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const logs = execFileSync('docker', ['logs', name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (logs.includes(text)) return;
    await delay(100);
  }
  throw new Error(`${name} never logged "${text}"`);
}

const round = (ms: number) => Math.round(ms);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const spread = (values: number[]) => `${round(Math.min(...values))} to ${round(Math.max(...values))}`;

async function main(): Promise<void> {
  const lines: string[] = [];
  const say = (line = '') => {
    lines.push(line);
    process.stdout.write(`${line}\n`);
  };
  say(
    `taskgate image benchmark: Docker ${docker(['version', '--format', '{{.Server.Version}}'])}, ${loadLine()} at the start`,
  );

  // Builds: each image cold (--no-cache), then BUILD_ROUNDS times after a change to a task (the
  // layers before it reused), alternating with the image before when there is one.
  const before = process.env.BENCH_BEFORE;
  if (process.env.BENCH_BUILD !== '0') {
    const sides = [
      ...(before
        ? [{ label: `before (${before})`, image: BEFORE_IMAGE, commit: before as string | undefined }]
        : []),
      { label: 'now', image: IMAGE, commit: undefined as string | undefined },
    ];
    const contexts = new Map<string, string>();
    try {
      for (const side of sides) contexts.set(side.image, await cloneContext(side.commit));
      const cold = new Map<string, number>();
      const warm = new Map<string, number[]>(sides.map((side) => [side.image, []]));
      for (const side of sides) {
        const context = contexts.get(side.image)!;
        cold.set(
          side.image,
          (
            await timed(() =>
              docker(['build', '--no-cache', '--network', 'host', '-q', '-t', side.image, context]),
            )
          ).ms,
        );
      }
      for (let i = 0; i < BUILD_ROUNDS; i++) {
        for (const side of i % 2 === 0 ? sides : [...sides].reverse()) {
          const task = path.join(contexts.get(side.image)!, 'tasks/prunetaskruns_weekly.ts');
          await writeFile(task, `${await readFile(task, 'utf8')}// change ${i}\n`);
          const context = contexts.get(side.image)!;
          warm
            .get(side.image)!
            .push(
              (await timed(() => docker(['build', '--network', 'host', '-q', '-t', side.image, context]))).ms,
            );
        }
      }
      for (const side of sides) {
        const times = warm.get(side.image)!;
        say(
          `${side.label.padEnd(22)} build cold ${seconds(cold.get(side.image)!)}; after a change to a task ` +
            `${seconds(median(times))} (median of ${times.length}: ${times.map(seconds).join(', ')})`,
        );
      }
    } finally {
      for (const context of contexts.values()) await rm(context, { recursive: true, force: true });
    }
  }
  const size = (image: string) => Number(docker(['image', 'inspect', '--format', '{{.Size}}', image]));
  const growth = (image: string) => {
    const bytes = size(image) - size(BASE);
    return `${BASE} + ${(bytes / MIB).toFixed(1)} MiB (${(bytes / 1e6).toFixed(1)} MB)`;
  };
  if (before) say(`before: image ${growth(BEFORE_IMAGE)}`);
  say(`image: ${growth(IMAGE)}`);

  const database = await openBenchDatabase();
  try {
    // The tables the built-in tasks work on, as compose's demo database has them.
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query(await readFile(path.join(ROOT, 'docker/demo-tables.sql'), 'utf8'));
    const env = { DATABASE_URL: database.url, CRON_SECRET_KEY: SECRET, LOG_LEVEL: 'info' };
    // The first start migrates the database; the measured ones find it migrated.
    stop((await start(IMAGE, env)).name);

    const runs = {
      bare: [] as number[],
      taskgate: [] as number[],
      bareStop: [] as number[],
      idleStop: [] as number[],
    };
    for (let i = 0; i < STARTS; i++) {
      for (const which of i % 2 === 0 ? ['bare', 'taskgate'] : ['taskgate', 'bare']) {
        const c = which === 'bare' ? await start(BASE, {}, ['node', '-e', BARE]) : await start(IMAGE, env);
        await delay(500);
        const stopped = stop(c.name);
        if (stopped.exitCode !== 0) throw new Error(`${which} exited ${stopped.exitCode} on docker stop`);
        (which === 'bare' ? runs.bare : runs.taskgate).push(c.ms);
        (which === 'bare' ? runs.bareStop : runs.idleStop).push(stopped.ms);
      }
    }
    if (before) {
      const c = await start(
        BEFORE_IMAGE,
        { ...env, DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/none` },
        [],
        false,
      );
      await untilLogged(c.name, 'database not reachable yet');
      const stopped = stop(c.name);
      say(`before: docker stop while starting ${round(stopped.ms)} ms, exit ${stopped.exitCode}`);
    }
    const startingStop: number[] = [];
    for (let i = 0; i < Math.min(STARTS, 3); i++) {
      const c = await start(
        IMAGE,
        { ...env, DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/none` },
        [],
        false,
      );
      await untilLogged(c.name, 'database not reachable yet');
      const stopped = stop(c.name);
      if (stopped.exitCode !== 0) throw new Error(`stop while starting: exit ${stopped.exitCode}`);
      startingStop.push(stopped.ms);
    }
    const runStop: number[] = [];
    for (let i = 0; i < Math.min(STARTS, 3); i++) {
      const c = await start(IMAGE, env);
      await client.query('begin');
      await client.query('lock table token_blacklist_outstandingtoken in access exclusive mode');
      const answer = await fetch(`http://127.0.0.1:${c.port}/cron/flushexpiredtokens_daily`, {
        method: 'POST',
        headers: { 'X-Cron-Secret': SECRET, Prefer: 'respond-async' },
      });
      const { runId } = (await answer.json()) as { runId: string };
      await delay(500);
      const stopped = stop(c.name);
      await client.query('rollback');
      const { rows } = await client.query('select status from taskgate.task_run where id = $1', [runId]);
      if (stopped.exitCode !== 0 || rows[0]?.status !== 'interrupted') {
        throw new Error(`stop during a run: exit ${stopped.exitCode}, run ${rows[0]?.status}`);
      }
      runStop.push(stopped.ms);
    }
    await client.end();

    const ratio = (a: number[], b: number[]) => `${(median(a) / median(b)).toFixed(1)}x`;
    say();
    say(`${STARTS} starts of each, alternating; medians (range)`);
    say(
      `docker run to /healthz 200   bare node ${round(median(runs.bare))} ms (${spread(runs.bare)})   taskgate ${round(median(runs.taskgate))} ms (${spread(runs.taskgate)}), ${ratio(runs.taskgate, runs.bare)}`,
    );
    say(
      `docker stop, idle            bare node ${round(median(runs.bareStop))} ms (${spread(runs.bareStop)})   taskgate ${round(median(runs.idleStop))} ms (${spread(runs.idleStop)})`,
    );
    say(
      `docker stop, starting        taskgate ${round(median(startingStop))} ms (${spread(startingStop)}), exit 0`,
    );
    say(
      `docker stop, during a run    taskgate ${round(median(runStop))} ms (${spread(runStop)}), exit 0, the run recorded interrupted`,
    );
    say(`${loadLine()} at the end`);
  } finally {
    await database.close();
  }
}

await main();
process.exit(0);
