/**
 * What `taskgate doctor` checks for every task of the Django pack, and what a run checks before it
 * deletes anything: the tables are there, the foreign keys are as upstream makes them, and the
 * role taskgate connects as has the privileges the task uses (has_table_privilege, so a role that
 * can read but not delete is found before the nightly run fails on "permission denied").
 */
import pg from 'pg';
import type { SqlClient } from '../../src/db/sql.js';
import type { CheckResult } from '../../src/task.js';

const quote = (name: string) => pg.escapeIdentifier(name);

type Privilege = 'SELECT' | 'DELETE' | 'UPDATE';

/** A privilege the task uses on a table. */
export interface Grant {
  table: string;
  privileges: Privilege[];
}

/** A foreign key upstream's migrations make, which the task relies on being DEFERRABLE. */
export interface ForeignKey {
  table: string;
  column: string;
  references: string;
}

class TablesError extends Error {
  override name = 'TablesError';
}

/** Fails naming the missing tables and what to check; taskgate never creates them on a DATABASE_URL. */
export async function requireTables(db: SqlClient, tables: string[], hint: string): Promise<void> {
  const { rows } = await db.query<{ database: string; missing: string[] }>(
    `select current_database() as database,
            coalesce(array_agg(name order by n) filter (where to_regclass(quoted) is null), '{}') as missing
       from unnest($1::text[], $2::text[]) with ordinality as given(name, quoted, n)`,
    [tables, tables.map(quote)],
  );
  const { database, missing } = rows[0]!;
  if (missing.length === 0) return;
  const names = missing.map((name) => `"${name}"`).join(', ');
  throw new TablesError(
    `${missing.length > 1 ? 'tables' : 'table'} ${names} ${missing.length > 1 ? 'are' : 'is'} not in database "${database}": ` +
      `check that DATABASE_URL names the application's database and that its \`manage.py migrate\` has run with ${hint}`,
  );
}

/** One line: the privileges the task uses that the current role lacks, or that it has them all. */
export async function privilegeCheck(db: SqlClient, task: string, grants: Grant[]): Promise<CheckResult> {
  const wanted = grants.flatMap(({ table, privileges }) =>
    privileges.map((privilege) => ({ table, privilege })),
  );
  const { rows } = await db.query<{ role: string; lacking: string[] }>(
    `select current_user as role,
            coalesce(array_agg(privilege || ' on "' || name || '"' order by n)
                       filter (where to_regclass(quoted) is not null and not has_table_privilege(quoted, privilege)),
                     '{}') as lacking
       from unnest($1::text[], $2::text[], $3::text[]) with ordinality as w(name, quoted, privilege, n)`,
    [wanted.map((w) => w.table), wanted.map((w) => quote(w.table)), wanted.map((w) => w.privilege)],
  );
  const { role, lacking } = rows[0]!;
  if (lacking.length > 0) {
    return {
      name: `${task}: privileges`,
      verdict: 'fail',
      message: `role "${role}" lacks ${lacking.join(', ')}: the run would fail on "permission denied" (GRANT ${[
        ...new Set(lacking.map((l) => l.split(' ')[0])),
      ].join(', ')} ON the tables TO "${role}")`,
    };
  }
  const summary = grants.map((g) => `${g.privileges.join(', ')} on "${g.table}"`).join('; ');
  return { name: `${task}: privileges`, verdict: 'ok', message: `role "${role}" has ${summary}` };
}

/** One line: each foreign key is there and DEFERRABLE, as Django makes it. */
async function foreignKeyCheck(db: SqlClient, task: string, keys: ForeignKey[]): Promise<CheckResult> {
  const { rows } = await db.query<{ table: string; column: string; found: boolean; deferrable: boolean }>(
    `select k.name as table, k.col as column,
            exists (select from pg_constraint c
                     where c.contype = 'f' and c.conrelid = to_regclass(k.quoted) and c.confrelid = to_regclass(k.ref)
                       and c.conkey = array[(select attnum from pg_attribute
                                              where attrelid = to_regclass(k.quoted) and attname = k.col)]) as found,
            exists (select from pg_constraint c
                     where c.contype = 'f' and c.conrelid = to_regclass(k.quoted) and c.confrelid = to_regclass(k.ref)
                       and c.condeferrable
                       and c.conkey = array[(select attnum from pg_attribute
                                              where attrelid = to_regclass(k.quoted) and attname = k.col)]) as deferrable
       from unnest($1::text[], $2::text[], $3::text[], $4::text[]) as k(name, quoted, col, ref)`,
    [
      keys.map((k) => k.table),
      keys.map((k) => quote(k.table)),
      keys.map((k) => k.column),
      keys.map((k) => quote(k.references)),
    ],
  );
  const missing = rows.filter((r) => !r.found);
  const immediate = rows.filter((r) => r.found && !r.deferrable);
  const name = `${task}: foreign keys`;
  if (immediate.length > 0) {
    return {
      name,
      verdict: 'fail',
      message: `${immediate.map((r) => `"${r.table}"."${r.column}"`).join(', ')}: foreign key not DEFERRABLE as Django makes it; the task deletes a row and then the rows pointing at it, in one transaction`,
    };
  }
  if (missing.length > 0) {
    return {
      name,
      verdict: 'warn',
      message: `${missing.map((r) => `"${r.table}"."${r.column}"`).join(', ')}: no foreign key where upstream's migrations make one (the task still clears the column or deletes the rows as Django would)`,
    };
  }
  return {
    name,
    verdict: 'ok',
    message: `${keys.length} foreign keys present and DEFERRABLE, as Django makes them`,
  };
}

/**
 * The doctor lines of a pack task: its tables (failing alone when they are missing), then its
 * foreign keys and privileges, then what the next run would delete (`counts`, one line).
 */
export async function packChecks(
  db: SqlClient,
  task: string,
  spec: {
    tables: string[];
    hint: string;
    grants: Grant[];
    foreignKeys?: ForeignKey[];
    counts: () => Promise<string>;
  },
): Promise<CheckResult[]> {
  try {
    await requireTables(db, spec.tables, spec.hint);
  } catch (error) {
    if (!(error instanceof TablesError)) throw error;
    return [{ name: `${task}: tables`, verdict: 'fail', message: error.message }];
  }
  const checks: CheckResult[] = [
    {
      name: `${task}: tables`,
      verdict: 'ok',
      message: spec.tables.map((t) => `"${t}"`).join(', ') + ' present',
    },
  ];
  if (spec.foreignKeys?.length) checks.push(await foreignKeyCheck(db, task, spec.foreignKeys));
  const privileges = await privilegeCheck(db, task, spec.grants);
  checks.push(privileges);
  // Counting needs SELECT; a role without it has been told so already.
  if (privileges.verdict === 'ok')
    checks.push({ name: `${task}: rows`, verdict: 'ok', message: await spec.counts() });
  return checks;
}

/** "1,234" */
export const count = (value: number) => value.toLocaleString('en-US');
