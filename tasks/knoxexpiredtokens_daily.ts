import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { KNOX_DDL } from './_knox/ddl.js';
import { AUTH_TOKEN, expiredTokenRule, HINT } from './_knox/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import { batchParams, before, runPack } from './_shared/pack.js';

/** django-rest-knox's expired tokens, for every user at once (./_knox/rules.ts). */
export default defineTask({
  name: 'knoxexpiredtokens_daily',
  description:
    "Deletes django-rest-knox's expired tokens (expiry before now) of every user, in short batches.",
  schedule: '50 0 * * *',
  params: z.strictObject({ ...batchParams }),
  queryTimeoutMs: 60_000,
  run: ({ params, db, now, signal, dryRun, logger }) => {
    const at = before(now, 0n);
    return runPack(
      { db, params, signal, dryRun, logger },
      { tables: [AUTH_TOKEN], hint: HINT, cutoffs: { expiry: at }, rules: [expiredTokenRule(at)] },
    );
  },
  check: ({ db }) =>
    packChecks(db, 'knoxexpiredtokens_daily', {
      tables: [AUTH_TOKEN],
      hint: HINT,
      grants: [{ table: AUTH_TOKEN, privileges: ['SELECT', 'DELETE'] }],
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const expired = await countMatching(db, expiredTokenRule(before(rows[0]!.now as Date, 0n)));
        return `${count(expired)} expired tokens (the next run deletes those)`;
      },
    }),
  prepareDevDatabase: (db) => db.query(KNOX_DDL).then(() => undefined),
});
