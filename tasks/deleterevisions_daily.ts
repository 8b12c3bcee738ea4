import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { REVERSION_DDL } from './_reversion/ddl.js';
import { HINT, otherKeysToRevisions, REVISION, staleRevisionsRule, VERSION } from './_reversion/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import { batchParams, before, DAY, days, runPack } from './_shared/pack.js';

const settings = z.object({
  REVERSION_MODELS: z
    .string()
    .optional()
    .transform((value) => {
      const names = (value ?? '')
        .split(',')
        .map((name) => name.trim().toLowerCase())
        .filter(Boolean);
      return names.length > 0 ? names : null;
    })
    .pipe(
      z
        .array(z.string().regex(/^[a-z0-9_]+\.[a-z0-9_]+$/, 'must be app_label.model names, comma-separated'))
        .nullable(),
    )
    .meta({
      description:
        'comma-separated `app_label.model` names whose revisions are considered (as deleterevisions app_label.Model …); unset: every model that has versions',
      default: 'every model',
    }),
  REVERSION_MODEL_DB: z
    .string()
    .optional()
    .transform((value) => value?.trim() || 'default')
    .describe("the database alias versions are stored for (Version.db; deleterevisions' --model-db)"),
});
type Settings = z.output<typeof settings>;

const ruleAt = (now: Date, params: { days: number; keep: number }, s: Settings) =>
  staleRevisionsRule({
    cutoff: before(now, BigInt(params.days) * DAY),
    modelDb: s.REVERSION_MODEL_DB,
    models: s.REVERSION_MODELS,
    keep: params.keep,
  });

async function refuseOtherKeys(db: Parameters<typeof otherKeysToRevisions>[0]): Promise<void> {
  const others = await otherKeysToRevisions(db);
  if (others.length > 0) {
    throw new Error(
      `${others.join(', ')} ${others.length > 1 ? 'point' : 'points'} at "${REVISION}": Django would apply ` +
        "that model's on_delete, which the database does not record; taskgate deletes nothing rather than guess",
    );
  }
}

/** django-reversion's `manage.py deleterevisions --days N --keep K`, in batches (./_reversion/rules.ts). */
export default defineTask({
  name: 'deleterevisions_daily',
  description:
    "Deletes django-reversion's revisions older than `days` days, keeping each object's `keep` newest (manage.py deleterevisions), in short batches.",
  schedule: '40 0 * * *',
  params: z.strictObject({
    // Upstream's defaults (0 and 0) delete every revision: a schedule needs a retention.
    days: days(30),
    keep: z.number().int().min(0).max(1_000_000).default(0),
    ...batchParams,
  }),
  queryTimeoutMs: 60_000,
  settings,
  async run({ params, db, now, signal, dryRun, logger, settings }) {
    const rule = ruleAt(now, params, settings);
    await refuseOtherKeys(db);
    return runPack(
      { db, params, signal, dryRun, logger },
      {
        tables: [REVISION, VERSION],
        hint: HINT,
        cutoffs: { dateCreated: rule.values[0] as string },
        rules: [rule],
      },
    );
  },
  async check({ db, settings }) {
    const checks = await packChecks(db, 'deleterevisions_daily', {
      tables: [REVISION, VERSION],
      hint: HINT,
      foreignKeys: [{ table: VERSION, column: 'revision_id', references: REVISION }],
      grants: [
        { table: REVISION, privileges: ['SELECT', 'DELETE'] },
        { table: VERSION, privileges: ['SELECT', 'DELETE'] },
      ],
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const stale = await countMatching(db, ruleAt(rows[0]!.now as Date, { days: 30, keep: 0 }, settings));
        return `${count(stale)} revisions older than 30 days (the next run with the default params deletes those)`;
      },
    });
    if (checks[0]?.verdict !== 'ok') return checks;
    const others = await otherKeysToRevisions(db);
    if (others.length > 0) {
      checks.push({
        name: 'deleterevisions_daily: other keys',
        verdict: 'fail',
        message: `${others.join(', ')} point at "${REVISION}": runs stop rather than guess that model's on_delete`,
      });
    }
    return checks;
  },
  prepareDevDatabase: (db) => db.query(REVERSION_DDL).then(() => undefined),
});
