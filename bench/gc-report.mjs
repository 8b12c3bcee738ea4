// `node --expose-gc --import ./bench/gc-report.mjs ...`: on SIGUSR2, a full collection, then the
// process's RSS and heap in use (bytes) written to BENCH_GC_FILE. What a process keeps, apart from
// the garbage its collector has not come back for yet.
import { writeFileSync } from 'node:fs';

process.on('SIGUSR2', () => {
  globalThis.gc?.();
  const { rss, heapUsed } = process.memoryUsage();
  writeFileSync(process.env.BENCH_GC_FILE, JSON.stringify({ rss, heapUsed }));
});
