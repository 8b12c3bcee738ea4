// `node --import ./bench/peak-rss.mjs ...`: writes the process's peak RSS (bytes) to
// BENCH_PEAK_RSS_FILE as it exits, however it exits. maxRSS is the kernel's high-water mark.
import { writeFileSync } from 'node:fs';

process.on('exit', () => {
  const file = process.env.BENCH_PEAK_RSS_FILE;
  if (file) writeFileSync(file, String(process.resourceUsage().maxRSS * 1024));
});
