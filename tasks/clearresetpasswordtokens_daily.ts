import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { PASSWORDRESET_DDL } from './_passwordreset/ddl.js';
import { expiredResetTokenRule, HINT, RESET_TOKEN } from './_passwordreset/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import { batchParams, before, HOUR, microseconds, runPack } from './_shared/pack.js';

const settings = z.object({
  // Hours a reset token lives, as in Django's settings (upstream's default: 24).
  DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME: z
    .string()
    .optional()
    .transform((value) => value?.trim() || '24')
    .pipe(z.string().regex(/^\d+(\.\d+)?$/, 'must be a number of hours'))
    .describe("how many hours a reset token lives, as in Django's settings"),
});

const cutoffAt = (now: Date, hours: string) => before(now, microseconds(hours, HOUR));

/** django-rest-passwordreset's `manage.py clearresetpasswodtokens`, in batches (./_passwordreset/rules.ts). */
export default defineTask({
  name: 'clearresetpasswordtokens_daily',
  description:
    "Deletes django-rest-passwordreset's expired reset tokens (manage.py clearresetpasswodtokens), in short batches.",
  schedule: '55 0 * * *',
  params: z.strictObject({ ...batchParams }),
  queryTimeoutMs: 60_000,
  settings,
  run: ({ params, db, now, signal, dryRun, logger, settings }) => {
    const cutoff = cutoffAt(now, settings.DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME);
    return runPack(
      { db, params, signal, dryRun, logger },
      {
        tables: [RESET_TOKEN],
        hint: HINT,
        cutoffs: { createdAt: cutoff },
        rules: [expiredResetTokenRule(cutoff)],
      },
    );
  },
  check: ({ db, settings }) =>
    packChecks(db, 'clearresetpasswordtokens_daily', {
      tables: [RESET_TOKEN],
      hint: HINT,
      grants: [{ table: RESET_TOKEN, privileges: ['SELECT', 'DELETE'] }],
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const cutoff = cutoffAt(
          rows[0]!.now as Date,
          settings.DJANGO_REST_MULTITOKENAUTH_RESET_TOKEN_EXPIRY_TIME,
        );
        return `${count(await countMatching(db, expiredResetTokenRule(cutoff)))} expired reset tokens (the next run deletes those)`;
      },
    }),
  prepareDevDatabase: (db) => db.query(PASSWORDRESET_DDL).then(() => undefined),
});
