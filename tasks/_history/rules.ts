/**
 * django-simple-history's historical tables, for cleanoldhistory_daily. Not a task.
 *
 * Upstream: `manage.py clean_old_history --auto --days N` (default 30) deletes, in the historical
 * table of every model registered with HistoricalRecords, the rows with
 * `history_date__lt=now - N days`: strictly before (simple_history/management/commands/
 * clean_old_history.py, the same from 3.1.1 to 3.13.0). Nothing points at a historical row with a
 * database key (simple-history makes its relations `db_constraint=False, DO_NOTHING`), so the
 * delete is one statement per table upstream, and nothing else goes with it.
 *
 * Which tables: a model's history table is named by the application (`<app>_historical<model>`
 * unless `table_name` says otherwise), so `--auto`'s list is found by shape: every table on the
 * search path whose primary key is `history_id` and that has `history_date` and `history_type`,
 * the columns HistoricalRecords adds. SIMPLE_HISTORY_TABLES names them instead, when given.
 * `history_date` is indexed by default: batches walk that index.
 */
import type { SqlClient } from '../../src/db/sql.js';
import type { DeleteRule } from '../_shared/batchDelete.js';

export const HINT = 'simple_history in INSTALLED_APPS and HistoricalRecords on the models';

/** The historical tables on the search path, by their columns (`--auto`). */
export async function historicalTables(db: SqlClient): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    `select c.relname as name
       from pg_class c
       join pg_index i on i.indrelid = c.oid and i.indisprimary and i.indnkeyatts = 1
       join pg_attribute k on k.attrelid = c.oid and k.attnum = i.indkey[0] and k.attname = 'history_id'
      where c.relkind in ('r', 'p') and to_regclass(quote_ident(c.relname)) = c.oid
        and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'history_date' and not a.attisdropped)
        and exists (select from pg_attribute a where a.attrelid = c.oid and a.attname = 'history_type' and not a.attisdropped)
      order by c.relname`,
  );
  return rows.map((r) => r.name);
}

export function oldHistoryRule(table: string, cutoff: string): DeleteRule {
  return {
    name: table,
    table,
    key: 'history_id',
    where: 't.history_date < $1',
    values: [cutoff],
    indexed: 'history_date',
  };
}
