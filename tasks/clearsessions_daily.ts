import { z } from 'zod';
import { defineTask } from '../src/task.js';
import {
  checkSessionTableHealth,
  clearExpiredSessions,
  countExpiredSessions,
  DJANGO_SESSION_DDL,
  sessionSettings,
} from './_django/sessions.js';

/**
 * Django's `manage.py clearsessions` for the database session backend, in batches (the SQL and
 * why it is shaped so: ./_django/sessions.ts).
 */
export default defineTask({
  name: 'clearsessions_daily',
  description: "Deletes Django's expired database sessions (manage.py clearsessions), in short batches.",
  schedule: '15 0 * * *',
  params: z.strictObject({
    batchSize: z.number().int().min(1).max(100_000).default(5_000),
  }),
  queryTimeoutMs: 60_000,
  settings: sessionSettings,
  async run({ params, db, logger, now, signal, dryRun, settings }) {
    // The cutoff is the run's start on the database clock, as for the flush: every replica shares it.
    const table = settings.DJANGO_SESSION_TABLE;
    if (dryRun) {
      const { expired } = await countExpiredSessions(db, table, now);
      return { cutoff: now.toISOString(), dryRun: true, wouldDelete: expired, deleted: 0, batches: 0 };
    }
    const result = await clearExpiredSessions(db, {
      table,
      cutoff: now,
      batchSize: params.batchSize,
      signal,
    });
    if (!result.complete) logger.warn(result, 'stopped between batches; the next run finishes it');
    return { ...result };
  },
  check: ({ db, settings }) =>
    checkSessionTableHealth(db, settings.DJANGO_SESSION_TABLE, 'clearsessions_daily'),
  prepareDevDatabase: (db) => db.query(DJANGO_SESSION_DDL).then(() => undefined),
});
