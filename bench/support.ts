/**
 * What the benchmarks of the compiled product share: a database to run on, servers started as a
 * platform starts them (each in its own process), and what the kernel says about a process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort, startEmbeddedDatabase } from '../src/db/embedded.js';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The compiled CLI, as the Dockerfile runs it; BENCH_CLI names another build (an older one, to compare). */
export const CLI = process.env.BENCH_CLI
  ? path.resolve(process.env.BENCH_CLI)
  : path.join(ROOT, 'dist/src/cli/main.js');
export const BARE_KOA = path.join(ROOT, 'bench/bare-koa.mjs');
export const BENCH_TASKS = path.join(ROOT, 'bench/tasks');
const PEAK_RSS = path.join(ROOT, 'bench/peak-rss.mjs');
export const GC_REPORT = path.join(ROOT, 'bench/gc-report.mjs');
const MB = 1024 * 1024;

/** Stops with a plain message when the product is not compiled: the benchmarks measure dist/. */
export function requireBuild(): void {
  if (!existsSync(CLI)) {
    process.stderr.write(
      'dist/ is missing: run `npm run build` first (the benchmarks measure the compiled product)\n',
    );
    process.exit(2);
  }
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Resident memory of a process now, in MB (from /proc). */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024);
}

/** CPU time (user + system) a process has used so far, in ms (from /proc, 10 ms resolution). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export { freePort };

/** One line about the machine's load, for the report: the figures mean little without it. */
export function loadLine(): string {
  const [one, five] = readFileSync('/proc/loadavg', 'utf8').split(' ');
  return `load average ${one} (1 min), ${five} (5 min)`;
}

function status(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', () => resolve(0));
    request.setTimeout(1_000, () => request.destroy());
  });
}

/** Polls `url` every few ms until it answers 200; the time since `since` in ms. */
async function until200(url: string, since: number, child: ChildProcess, limitMs = 60_000): Promise<number> {
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`the process exited (${child.exitCode}) before ${url} answered 200`);
    if ((await status(url)) === 200) return performance.now() - since;
    if (performance.now() - since > limitMs) throw new Error(`${url} did not answer 200 in ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export interface Started {
  pid: number;
  url: string;
  /** From spawn to the first 200 of /healthz, and of /readyz (ms). */
  healthzMs: number;
  readyzMs: number;
  stop(): Promise<void>;
}

/**
 * Starts `node [nodeArgs] <script> [args]` with PORT and HOST set, as a platform would, and times it to
 * the first 200 of /healthz and then of /readyz. Its output goes to /dev/null.
 */
export async function startServer(
  script: string,
  args: string[],
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<Started> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    const healthzMs = await until200(`${url}/healthz`, started, child);
    const readyzMs = await until200(`${url}/readyz`, started, child);
    return {
      pid: child.pid!,
      url,
      healthzMs,
      readyzMs,
      async stop() {
        if (child.exitCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** The environment of the compiled server in production, on `databaseUrl`. */
export function productionEnv(
  databaseUrl: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    CRON_SECRET_KEY: randomBytes(32).toString('hex'),
    ...extra,
  };
}

/** Runs the compiled CLI to completion; its exit code, stderr and peak RSS (MB). */
export function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; stdout: string; ms: number; peakRssMb: number }> {
  const peakFile = path.join(tmpdir(), `taskgate-peak-${randomBytes(4).toString('hex')}`);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', PEAK_RSS, CLI, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, BENCH_PEAK_RSS_FILE: peakFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = performance.now() - started;
      let peak = 0;
      try {
        peak = Number(readFileSync(peakFile, 'utf8'));
      } catch {
        // no figure: the process died before its exit handler ran
      }
      rm(peakFile, { force: true }).finally(() =>
        resolve({ code, stderr, stdout, ms, peakRssMb: Math.round(peak / MB) }),
      );
    });
  });
}

/** A database of the benchmark's own: on BENCH_DATABASE_URL's server, or an embedded PostgreSQL. */
export async function openBenchDatabase(): Promise<{ url: string; server: string; close(): Promise<void> }> {
  const name = `taskgate_bench_${randomBytes(4).toString('hex')}`;
  const given = process.env.BENCH_DATABASE_URL;
  if (given) {
    const admin = new pg.Client({ connectionString: given });
    await admin.connect();
    await admin.query(`create database ${name}`);
    await admin.end();
    const url = new URL(given);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      server: 'BENCH_DATABASE_URL',
      async close() {
        const client = new pg.Client({ connectionString: given });
        await client.connect();
        await client.query(`drop database if exists ${name} with (force)`);
        await client.end();
      },
    };
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'taskgate-bench-'));
  const embedded = await startEmbeddedDatabase({
    dataDir: path.join(dir, 'pg'),
    persistent: false,
    fast: true,
  });
  await embedded.createDatabase(name);
  return {
    url: embedded.urlFor(name),
    server: 'embedded PostgreSQL',
    async close() {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
