import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { countExpiredTokens, flushExpiredTokens } from './_simplejwt/flush.js';
import {
  checkSimplejwtTables,
  createSimplejwtTables,
  simplejwtSettings,
  tablesOf,
} from './_simplejwt/tables.js';

/**
 * djangorestframework-simplejwt's `flushexpiredtokens`, in batches (the SQL: ./_simplejwt/flush.ts;
 * why it is shaped so: docs/design/flush.md; what it promises: docs/tasks/flushexpiredtokens_daily.md).
 */
export default defineTask({
  name: 'flushexpiredtokens_daily',
  description: 'Deletes expired simplejwt refresh tokens and their blacklist rows, in short batches.',
  schedule: '0 0 * * *',
  params: z.strictObject({
    // The first batch's size: 5,000 keeps a batch well under 250 ms even when every examined
    // token is expired (bench/flush.ts). The next ones are sized to take about batchTargetMs.
    batchSize: z.number().int().min(1).max(100_000).default(5_000),
    // 0: every batch examines batchSize rows.
    batchTargetMs: z.number().int().min(0).max(1_000).default(100),
  }),
  // A batch takes well under a second; a minute leaves room for a busy database.
  queryTimeoutMs: 60_000,
  settings: simplejwtSettings,
  // The seed's Django route, answered with the seed's body byte for byte (Django's JsonResponse
  // puts a space after `:` and `,`), so a workflow written for it works unchanged.
  aliases: [
    {
      path: '/api/v1/auth/cron/flush-tokens/',
      successBody: '{"status": "success", "message": "Expired tokens flushed successfully."}',
    },
  ],
  async run({ params, db, logger, now, signal, dryRun, settings }) {
    // The cutoff is the run's start on the database clock (`started_at` of the run record), not
    // this process's clock: every replica shares it, and it is the clock the application's
    // `expires_at` values are compared against in SQL, so host clock skew cannot delete a live token.
    const cutoff = now;
    const tables = tablesOf(settings);
    if (dryRun) return { ...(await countExpiredTokens(db, { tables, cutoff })) };
    const result = await flushExpiredTokens(db, {
      tables,
      cutoff,
      batchSize: params.batchSize,
      batchTargetMs: params.batchTargetMs,
      signal,
      onBatch: (batch) => logger.debug(batch, 'batch committed'),
      onRetry: (error, attempt) =>
        logger.warn({ err: error, attempt }, 'batch rolled back by a deadlock; running it again'),
    });
    if (!result.complete) logger.warn(result, 'flush stopped between batches; the next run finishes it');
    return { ...result };
  },
  check: ({ db, settings }) => checkSimplejwtTables(db, tablesOf(settings), 'flushexpiredtokens_daily'),
  prepareDevDatabase: createSimplejwtTables,
});
