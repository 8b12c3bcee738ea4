/**
 * `npm run bench:slots` (after `npm run build`): what slots cost, on the compiled server.
 *
 * 1. A duplicate fire: `POST /cron/<task>` with `X-Cron-Scheduler` for a slot whose run has
 *    succeeded (the slot is decided on the database clock, the run found by its key, the fire
 *    counted), against the baseline of a retry replayed by its `Idempotency-Key` (the run found by
 *    its key, nothing decided or counted) and `GET /healthz` (the floor: no database). Requests go
 *    one at a time on one keep-alive connection, `BENCH_REQUESTS` each after a warm-up, in
 *    alternating rounds; the latency percentiles and the ratio to the baseline are printed.
 * 2. The internal clock's idle cost: two servers, INTERNAL_CLOCK on and off, each on a database of
 *    its own, left idle for `BENCH_IDLE_SECONDS` with a daily task that is not due. Statements (the
 *    database's committed and rolled-back transactions) and the server's CPU time are read over the
 *    window and told per hour.
 *
 * BENCH_DATABASE_URL: a PostgreSQL to use (databases there are created and dropped); unset, an
 * embedded PostgreSQL. BENCH_CLI: another compiled main.js.
 */
import path from 'node:path';
import pg from 'pg';
import {
  CLI,
  cpuMs,
  loadLine,
  openBenchDatabase,
  productionEnv,
  ROOT,
  requireBuild,
  type Started,
  startServer,
} from './support.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
/** A project of one daily task (and no built-in one): its config names its folder as the tasks'. */
const PROJECT = path.join(ROOT, 'bench/tasks-slots/taskgate.config.json');
const TARGET_DUPLICATE_P50_MS = 3;

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** `count` requests one after another; each one's time in ms, sorted. */
async function latencies(count: number, request: () => Promise<Response>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const answer = await request();
    await answer.arrayBuffer();
    if (answer.status !== 200) throw new Error(`answered ${answer.status}`);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

async function duplicateFires(server: Started, secret: string): Promise<Record<string, number[]>> {
  const fire = () =>
    fetch(`${server.url}/cron/slotted`, {
      method: 'POST',
      headers: { 'X-Cron-Secret': secret, 'X-Cron-Scheduler': 'bench', 'Content-Type': 'application/json' },
      body: '{}',
    });
  const replay = () =>
    fetch(`${server.url}/cron/slotted`, {
      method: 'POST',
      headers: {
        'X-Cron-Secret': secret,
        'Idempotency-Key': 'bench-replay',
        'Content-Type': 'application/json',
      },
      body: '{}',
    });
  const health = () => fetch(`${server.url}/healthz`);
  // The slot's run, and the key's run, once; every later request is answered with them.
  for (const first of [fire, replay]) {
    const answer = await first();
    if (answer.status !== 200)
      throw new Error(`the first fire answered ${answer.status}: ${await answer.text()}`);
  }
  const measured: Record<string, number[]> = { duplicate: [], replay: [], healthz: [] };
  const kinds = { duplicate: fire, replay, healthz: health };
  for (const request of Object.values(kinds)) await latencies(50, request);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, request] of Object.entries(kinds)) {
      measured[name]!.push(...(await latencies(Math.ceil(REQUESTS / ROUNDS), request)));
    }
  }
  for (const values of Object.values(measured)) values.sort((a, b) => a - b);
  return measured;
}

/** The database's transactions so far (each statement outside a transaction is one). */
async function transactions(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      'select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()',
    );
    return Number(rows[0].n);
  } finally {
    await client.end();
  }
}

async function idleCost(
  internalClock: boolean,
): Promise<{ statementsPerHour: number; cpuMsPerHour: number }> {
  const database = await openBenchDatabase();
  try {
    const server = await startServer(
      CLI,
      ['serve'],
      productionEnv(database.url, {
        TASKGATE_CONFIG: PROJECT,
        INTERNAL_CLOCK: String(internalClock),
        LOG_LEVEL: 'warn',
      }),
    );
    try {
      // Start-up (migrations, catch-up) settles first.
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      // The statistics collector reports transactions of other sessions within half a second.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const [statementsBefore, cpuBefore] = [await transactions(database.url), cpuMs(server.pid)];
      await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
      const [statementsAfter, cpuAfter] = [await transactions(database.url), cpuMs(server.pid)];
      const perHour = 3600 / IDLE_SECONDS;
      // Our own two reads are one transaction each.
      return {
        statementsPerHour: Math.round((statementsAfter - statementsBefore - 1) * perHour),
        cpuMsPerHour: Math.round((cpuAfter - cpuBefore) * perHour),
      };
    } finally {
      await server.stop();
    }
  } finally {
    await database.close();
  }
}

async function main(): Promise<boolean> {
  requireBuild();
  const database = await openBenchDatabase();
  let passed = true;
  try {
    const env = productionEnv(database.url, {
      TASKGATE_CONFIG: PROJECT,
      INTERNAL_CLOCK: 'false',
      LOG_LEVEL: 'warn',
    });
    const server = await startServer(CLI, ['serve'], env);
    let fires: Record<string, number[]>;
    try {
      fires = await duplicateFires(server, env.CRON_SECRET_KEY!);
    } finally {
      await server.stop();
    }
    const row = (name: string) => {
      const values = fires[name]!;
      return `${name.padEnd(10)} p50 ${percentile(values, 0.5).toFixed(2)} ms   p90 ${percentile(values, 0.9).toFixed(2)} ms   p99 ${percentile(values, 0.99).toFixed(2)} ms   (${values.length} requests)`;
    };
    const p50 = percentile(fires.duplicate!, 0.5);
    const ratio = p50 / percentile(fires.replay!, 0.5);
    passed &&= p50 <= TARGET_DUPLICATE_P50_MS;
    process.stdout.write(
      [
        `taskgate slots benchmark (${loadLine()})`,
        '',
        'A fire of a slot already run, one request at a time on one connection:',
        `  ${row('duplicate')}`,
        `  ${row('replay')}   (baseline: a retry replayed by its Idempotency-Key)`,
        `  ${row('healthz')}   (floor: no database)`,
        `  duplicate / replay at p50: ${ratio.toFixed(2)}x; target p50 <= ${TARGET_DUPLICATE_P50_MS} ms: ${p50 <= TARGET_DUPLICATE_P50_MS ? 'met' : 'MISSED'}`,
        '',
      ].join('\n'),
    );
  } finally {
    await database.close();
  }
  const [on, off] = [await idleCost(true), await idleCost(false)];
  process.stdout.write(
    [
      `The internal clock while nothing is due (${IDLE_SECONDS} s idle each, told per hour):`,
      `  INTERNAL_CLOCK=true:  ${on.statementsPerHour} statements/h, ${on.cpuMsPerHour} ms CPU/h`,
      `  INTERNAL_CLOCK=false: ${off.statementsPerHour} statements/h, ${off.cpuMsPerHour} ms CPU/h (baseline: the abandoned-run sweep)`,
      `  the clock's own cost: ${on.statementsPerHour - off.statementsPerHour} statements/h, ${on.cpuMsPerHour - off.cpuMsPerHour} ms CPU/h`,
      '',
    ].join('\n'),
  );
  return passed;
}

main().then(
  (passed) => process.exit(passed ? 0 : 1),
  (error) => {
    process.stderr.write(`${error instanceof Error ? error.stack : error}\n`);
    process.exit(2);
  },
);
