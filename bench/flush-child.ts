/**
 * One contender of bench/flush.ts, in a process of its own so that the peak memory it reports is
 * that contender's alone. Prints one JSON line.
 *
 *   tsx bench/flush-child.ts task <database url> <batchSize>   taskgate's task, through the runner
 *   tsx bench/flush-child.ts task-unfenced <database url> <batchSize>
 *                                                              the same with fencing turned off (the
 *                                                              runner's bench-only `fencing: false`):
 *                                                              the flush as it ran before fencing
 *   tsx bench/flush-child.ts orm <database url>                 the naive ORM way, as Django does it
 */
import { defineEntity, p } from '@mikro-orm/core';
import { MikroORM } from '@mikro-orm/postgresql';
import { loadConfig } from '../src/config.js';
import { Registry, validateTask } from '../src/core/registry.js';
import { Runner } from '../src/core/runner.js';
import { Db } from '../src/db/sql.js';
import { createLogger } from '../src/logger.js';
import flushTask from '../tasks/flushexpiredtokens_daily.js';
import { BLACKLIST, OUTSTANDING } from './flush-seed.js';

const MB = 1024 * 1024;

/** Peak heap, sampled: V8 reports no high-water mark of its own. */
function heapSampler() {
  let peak = process.memoryUsage().heapUsed;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().heapUsed);
    },
  };
}

async function runTask(url: string, batchSize: number, fencing: boolean) {
  const db = new Db({ url, max: 2, queryTimeoutMs: 60_000, connectTimeoutMs: 5_000 });
  try {
    const runner = new Runner({
      db,
      registry: new Registry([validateTask('flushexpiredtokens_daily.ts', flushTask)]),
      logger: createLogger({ level: 'silent', pretty: false }),
      config: loadConfig({ NODE_ENV: 'test', DATABASE_URL: url }),
      fencing,
    });
    const baselineRss = process.memoryUsage().rss;
    const heap = heapSampler();
    const run = await runner.run({ task: flushTask.name, params: { batchSize }, trigger: 'bench' });
    const peakHeap = heap.stop();
    if (run.status !== 'succeeded') throw new Error(`the task ${run.status}: ${run.error}`);
    const result = run.result as {
      deletedOutstanding: number;
      deletedBlacklisted: number;
      batches: number;
      durationMs: number;
      longestBatchMs: number;
    };
    return { ...result, baselineRss, peakHeap };
  } finally {
    await db.close();
  }
}

const OutstandingToken = defineEntity({
  name: 'OutstandingToken',
  tableName: OUTSTANDING,
  properties: {
    id: p.bigint('string').primary(),
    token: p.text(),
    createdAt: p.datetime().nullable(),
    expiresAt: p.datetime(),
    userId: p.integer().nullable(),
    jti: p.string().length(255),
  },
});

const BlacklistedToken = defineEntity({
  name: 'BlacklistedToken',
  tableName: BLACKLIST,
  properties: {
    id: p.bigint('string').primary(),
    blacklistedAt: p.datetime(),
    token: () => p.oneToOne(OutstandingToken).owner(),
  },
});

/**
 * What Django's `OutstandingToken.objects.filter(expires_at__lte=now).delete()` does, in the
 * ORM's idiom: load every expired token, load their blacklist rows, remove them all, flush, in
 * one transaction.
 */
async function runOrm(url: string) {
  const orm = await MikroORM.init({
    clientUrl: url,
    entities: [OutstandingToken, BlacklistedToken],
    discovery: { warnWhenNoEntities: false },
    debug: false,
  });
  try {
    const baselineRss = process.memoryUsage().rss;
    const heap = heapSampler();
    const started = performance.now();
    const [clock] = await orm.em.getConnection().execute<{ now: Date }[]>('select now() as now');
    const now = clock!.now;
    const counts = await orm.em.fork().transactional(async (em) => {
      const tokens = await em.find(OutstandingToken, { expiresAt: { $lte: now } });
      const blacklisted = await em.find(BlacklistedToken, { token: { $in: tokens.map((t) => t.id) } });
      em.remove(blacklisted);
      em.remove(tokens);
      return { deletedOutstanding: tokens.length, deletedBlacklisted: blacklisted.length };
    });
    const durationMs = Math.round(performance.now() - started);
    return { ...counts, durationMs, baselineRss, peakHeap: heap.stop() };
  } finally {
    await orm.close(true);
  }
}

const [mode, url, batchSize] = process.argv.slice(2);
if (!url || (mode !== 'task' && mode !== 'task-unfenced' && mode !== 'orm')) {
  process.stderr.write('usage: tsx bench/flush-child.ts task|task-unfenced|orm <database url> [batchSize]\n');
  process.exit(2);
}
const measured =
  mode === 'orm' ? await runOrm(url) : await runTask(url, Number(batchSize ?? 5_000), mode === 'task');
// maxRSS is the kernel's high-water mark for this process, in KiB.
const peakRss = process.resourceUsage().maxRSS * 1024;
process.stdout.write(
  `${JSON.stringify({
    ...measured,
    baselineRssMb: Math.round(measured.baselineRss / MB),
    peakRssMb: Math.round(peakRss / MB),
    peakHeapMb: Math.round(measured.peakHeap / MB),
  })}\n`,
);
