import { z } from 'zod';
import { defineTask } from '../src/task.js';
import { EXAMPLE_HISTORY_DDL } from './_history/ddl.js';
import { HINT, historicalTables, oldHistoryRule } from './_history/rules.js';
import { countMatching } from './_shared/batchDelete.js';
import { count, packChecks } from './_shared/checks.js';
import { batchParams, before, DAY, days, runPack } from './_shared/pack.js';

const settings = z.object({
  // Comma-separated: the historical tables to clean, instead of every one found (clean_old_history's `app.model` list).
  SIMPLE_HISTORY_TABLES: z
    .string()
    .optional()
    .transform((value) =>
      (value ?? '')
        .split(',')
        .map((name) => name.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be plain SQL table names, comma-separated'),
      ),
    )
    .meta({
      description:
        'comma-separated historical tables to clean (as `clean_old_history app.Model …`); unset: every historical table found (`--auto`)',
      default: 'every one found',
    }),
});

async function tablesOf(db: Parameters<typeof historicalTables>[0], named: string[]): Promise<string[]> {
  return named.length > 0 ? named : historicalTables(db);
}

/** django-simple-history's `manage.py clean_old_history --auto --days N`, in batches (./_history/rules.ts). */
export default defineTask({
  name: 'cleanoldhistory_daily',
  description:
    "Deletes django-simple-history's historical records older than `days` days from every historical table (manage.py clean_old_history --auto), in short batches.",
  schedule: '45 0 * * *',
  params: z.strictObject({ days: days(30), ...batchParams }),
  queryTimeoutMs: 60_000,
  settings,
  async run({ params, db, now, signal, dryRun, logger, settings }) {
    const cutoff = before(now, BigInt(params.days) * DAY);
    const tables = await tablesOf(db, settings.SIMPLE_HISTORY_TABLES);
    if (tables.length === 0) logger.warn('no historical table found: nothing to clean');
    return runPack(
      { db, params, signal, dryRun, logger },
      {
        tables,
        hint: HINT,
        cutoffs: { historyDate: cutoff },
        rules: tables.map((t) => oldHistoryRule(t, cutoff)),
      },
    );
  },
  async check({ db, settings }) {
    const tables = await tablesOf(db, settings.SIMPLE_HISTORY_TABLES);
    if (tables.length === 0) {
      return [
        {
          name: 'cleanoldhistory_daily: tables',
          verdict: 'warn',
          message:
            'no historical table (primary key history_id, with history_date and history_type) on the search path: nothing to clean',
        },
      ];
    }
    return packChecks(db, 'cleanoldhistory_daily', {
      tables,
      hint: HINT,
      grants: tables.map((table) => ({ table, privileges: ['SELECT', 'DELETE'] })),
      counts: async () => {
        const { rows } = await db.query('select now() as now');
        const cutoff = before(rows[0]!.now as Date, 30n * DAY);
        let old = 0;
        for (const table of tables) old += await countMatching(db, oldHistoryRule(table, cutoff));
        return `${count(old)} historical records older than 30 days in ${tables.length} tables (the next run with the default days deletes those)`;
      },
    });
  },
  prepareDevDatabase: (db) => db.query(EXAMPLE_HISTORY_DDL).then(() => undefined),
});
