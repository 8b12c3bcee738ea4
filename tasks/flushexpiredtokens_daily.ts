import { z } from 'zod';
import { countExpiredTokens, flushExpiredTokens } from '../src/flush.js';
import { defineTask } from '../src/task.js';
import { checkSimplejwtTables, createSimplejwtTables } from './_simplejwt.js';

/**
 * djangorestframework-simplejwt's `flushexpiredtokens`, in batches (the SQL and why it is shaped
 * so: src/flush.ts).
 */
export default defineTask({
  name: 'flushexpiredtokens_daily',
  description: 'Deletes expired simplejwt refresh tokens and their blacklist rows, in short batches.',
  schedule: '0 0 * * *',
  params: z.strictObject({
    // 5,000 keeps the longest batch transaction well under 250 ms even when every examined token
    // is expired (bench/flush.ts); larger batches gain little throughput.
    batchSize: z.number().int().min(1).max(100_000).default(5_000),
  }),
  // A batch takes well under a second; a minute leaves room for a busy database.
  queryTimeoutMs: 60_000,
  async run({ params, db, logger, now, signal, dryRun, config }) {
    // The cutoff is the run's start on the database clock (`started_at` of the run record), not
    // this process's clock: every replica shares it, and it is the clock the application's
    // `expires_at` values are compared against in SQL, so host clock skew cannot delete a live token.
    const cutoff = now;
    const tables = config.tokenTables;
    if (dryRun) return { ...(await countExpiredTokens(db, { tables, cutoff })) };
    const result = await flushExpiredTokens(db, {
      tables,
      cutoff,
      batchSize: params.batchSize,
      signal,
      onBatch: (batch) => logger.debug(batch, 'batch committed'),
      onRetry: (error, attempt) =>
        logger.warn({ err: error, attempt }, 'batch rolled back by a deadlock; running it again'),
    });
    if (!result.complete) logger.warn(result, 'flush stopped between batches; the next run finishes it');
    return { ...result };
  },
  check: ({ db, config }) => checkSimplejwtTables(db, config.tokenTables, 'flushexpiredtokens_daily'),
  prepareDevDatabase: createSimplejwtTables,
});
