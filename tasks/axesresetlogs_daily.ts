import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { AXES_DDL } from './_axes/ddl.js';
import { ACCESS_LOG, accessLogRule, HINT } from './_axes/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import { batchParams, before, DAY, days, runPack } from './_shared/pack.js';

/** django-axes' `manage.py axes_reset_logs --age N`, in batches (./_axes/rules.ts). */
export default defineTask({
  name: 'axesresetlogs_daily',
  description:
    "Deletes django-axes' access logs older than `age` days (manage.py axes_reset_logs), in short batches.",
  schedule: '30 0 * * *',
  params: z.strictObject({ age: days(30), ...batchParams }),
  queryTimeoutMs: 60_000,
  run: ({ params, db, now, signal, dryRun, logger }) => {
    const cutoff = before(now, BigInt(params.age) * DAY);
    return runPack(
      { db, params, signal, dryRun, logger },
      { tables: [ACCESS_LOG], hint: HINT, cutoffs: { attemptTime: cutoff }, rules: [accessLogRule(cutoff)] },
    );
  },
  check: ({ db }) =>
    packChecks(db, 'axesresetlogs_daily', {
      tables: [ACCESS_LOG],
      hint: HINT,
      grants: [{ table: ACCESS_LOG, privileges: ['SELECT', 'DELETE'] }],
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const old = await countMatching(db, accessLogRule(before(rows[0]!.now as Date, 30n * DAY)));
        return `${count(old)} access logs older than 30 days (the next run with the default age deletes those)`;
      },
    }),
  prepareDevDatabase: (db) => db.query(AXES_DDL).then(() => undefined),
});
