import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { CELERY_RESULTS_DDL } from './_celery/ddl.js';
import { expiredResultRules, GROUP_RESULT, HINT, TASK_RESULT } from './_celery/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import { batchParams, before, microseconds, runPack, SECOND } from './_shared/pack.js';

const settings = z.object({
  // Celery's result_expires, in seconds (its default: one day).
  CELERY_RESULT_EXPIRES: z
    .string()
    .optional()
    .transform((value) => value?.trim() || '86400')
    .pipe(z.string().regex(/^(0*[1-9]\d*(\.\d+)?|0*\.\d*[1-9]\d*)$/, 'must be a positive number of seconds'))
    .describe("Celery's result_expires, in seconds: results done longer ago than this are deleted"),
});

/** Celery's `celery.backend_cleanup` for django-celery-results, without beat (./_celery/rules.ts). */
export default defineTask({
  name: 'celerybackendcleanup_daily',
  description:
    "Deletes django-celery-results' task and group results older than CELERY_RESULT_EXPIRES (celery.backend_cleanup), in short batches.",
  schedule: '0 4 * * *',
  params: z.strictObject({ ...batchParams }),
  queryTimeoutMs: 60_000,
  settings,
  run: ({ params, db, now, signal, dryRun, logger, settings }) => {
    const cutoff = before(now, microseconds(settings.CELERY_RESULT_EXPIRES, SECOND));
    return runPack(
      { db, params, signal, dryRun, logger },
      {
        tables: [TASK_RESULT, GROUP_RESULT],
        hint: HINT,
        cutoffs: { dateDone: cutoff },
        rules: expiredResultRules(cutoff),
      },
    );
  },
  check: ({ db, settings }) =>
    packChecks(db, 'celerybackendcleanup_daily', {
      tables: [TASK_RESULT, GROUP_RESULT],
      hint: HINT,
      grants: [TASK_RESULT, GROUP_RESULT].map((table) => ({ table, privileges: ['SELECT', 'DELETE'] })),
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const rules = expiredResultRules(
          before(rows[0]!.now as Date, microseconds(settings.CELERY_RESULT_EXPIRES, SECOND)),
        );
        const [tasks, groups] = await Promise.all(rules.map((rule) => countMatching(db, rule)));
        return `${count(tasks!)} task results and ${count(groups!)} group results expired (the next run deletes those)`;
      },
    }),
  prepareDevDatabase: (db) => db.query(CELERY_RESULTS_DDL).then(() => undefined),
});
