import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { AXES_DDL } from './_axes/ddl.js';
import {
  ACCESS_ATTEMPT,
  ATTEMPT_EXPIRATION,
  CURRENT_AXES,
  expiredAttemptsRule,
  HINT,
} from './_axes/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import {
  atLeast,
  batchParams,
  before,
  HOUR,
  microseconds,
  optionalNumber,
  release,
  runPack,
  yes,
} from './_shared/pack.js';

/**
 * django-axes' expiry of lock-outs (what it runs on every login attempt), on a schedule: access
 * attempts past AXES_COOLOFF_TIME are deleted, which lifts their lock-outs (./_axes/rules.ts).
 */
export default defineTask({
  name: 'axesexpireattempts_hourly',
  description:
    "Deletes django-axes' access attempts past AXES_COOLOFF_TIME, lifting their lock-outs, in short batches.",
  schedule: '5 * * * *',
  params: z.strictObject({ ...batchParams }),
  queryTimeoutMs: 60_000,
  settings: z.object({
    AXES_COOLOFF_TIME: optionalNumber('hours').describe(
      "axes' AXES_COOLOFF_TIME in hours, whole or not, as axes reads a number; unset (axes' default): attempts never expire",
    ),
    AXES_USE_ATTEMPT_EXPIRATION: yes.describe(
      "axes 8.1's setting: expire attempts by their axes_accessattemptexpiration row's expires_at instead",
    ),
    AXES_VERSION: release(CURRENT_AXES).describe(
      'the django-axes release the application runs: before 8.1 an attempt expires strictly before the cool-off ends (`<`)',
    ),
  }),
  async run({ params, db, now, signal, dryRun, logger, settings }) {
    if (settings.AXES_COOLOFF_TIME === undefined) {
      // As axes: "Skipping clean for expired access attempts because no AXES_COOLOFF_TIME is configured".
      logger.info('AXES_COOLOFF_TIME is not set: access attempts never expire, nothing to delete');
      return {
        cutoffs: {},
        deleted: {},
        related: {},
        batches: 0,
        durationMs: 0,
        longestBatchMs: 0,
        complete: true,
      };
    }
    const rule = await ruleFor(db, now, settings);
    return runPack(
      { db, params, signal, dryRun, logger },
      {
        tables: [ACCESS_ATTEMPT],
        hint: HINT,
        cutoffs: { [rule.cutoffName]: rule.rule.values[0] as string },
        rules: [rule.rule],
      },
    );
  },
  check: ({ db, settings }) =>
    packChecks(db, 'axesexpireattempts_hourly', {
      tables: [ACCESS_ATTEMPT, ...(settings.AXES_USE_ATTEMPT_EXPIRATION ? [ATTEMPT_EXPIRATION] : [])],
      hint: HINT,
      grants: [{ table: ACCESS_ATTEMPT, privileges: ['SELECT', 'DELETE'] }],
      counts: async () => {
        if (settings.AXES_COOLOFF_TIME === undefined)
          return 'AXES_COOLOFF_TIME is not set: access attempts never expire';
        const { rows } = await db.query('select now() as now');
        const { rule } = await ruleFor(db, rows[0]!.now as Date, settings);
        return `${count(await countMatching(db, rule))} access attempts past their cool-off (the next run deletes those)`;
      },
    }),
  prepareDevDatabase: (db) => db.query(AXES_DDL).then(() => undefined),
});

async function ruleFor(
  db: { query: (text: string) => Promise<{ rows: Record<string, unknown>[] }> },
  now: Date,
  settings: { AXES_COOLOFF_TIME?: string; AXES_USE_ATTEMPT_EXPIRATION: boolean; AXES_VERSION: string },
) {
  const current = atLeast(settings.AXES_VERSION, '8.1');
  const useExpiration = current && settings.AXES_USE_ATTEMPT_EXPIRATION;
  const { rows } = await db.query(`select to_regclass('${ATTEMPT_EXPIRATION}') is not null as present`);
  const rule = expiredAttemptsRule({
    cutoff: before(now, microseconds(settings.AXES_COOLOFF_TIME ?? '0', HOUR)),
    inclusive: current,
    useExpiration,
    now: before(now, 0n),
    expirationTable: rows[0]!.present === true,
  });
  return { rule, cutoffName: useExpiration ? 'expiresAt' : 'attemptTime' };
}
