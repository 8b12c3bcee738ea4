/** The most rows a paced batch examines, and the fewest. */
export const MAX_BATCH_SIZE = 50_000;
export const MIN_BATCH_SIZE = 100;

/**
 * The size of the next batch when each should take about `targetMs`: the rows the last one would
 * have examined in that time at its pace, but at most twice the last size (a cheap stretch of
 * the table says little about the next one) and within MIN_BATCH_SIZE..MAX_BATCH_SIZE. A slow
 * batch shrinks the next one at once. `targetMs` 0: the size stays.
 */
export function nextBatchSize(size: number, ms: number, targetMs: number): number {
  if (targetMs <= 0) return size;
  const paced = Math.floor((size * targetMs) / Math.max(ms, 1));
  return Math.max(MIN_BATCH_SIZE, Math.min(MAX_BATCH_SIZE, size * 2, paced));
}
