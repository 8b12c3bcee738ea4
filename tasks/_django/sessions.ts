/**
 * Django's database session table (django.contrib.sessions), for clearsessions_daily. Not a task
 * (the registry skips modules whose name starts with `_`).
 *
 * `manage.py clearsessions` with the database backend is
 * `Session.objects.filter(expire_date__lt=timezone.now()).delete()`: rows whose `expire_date` is
 * strictly before now. Here it is done in short batches through the `expire_date` index Django
 * creates, each batch locking its rows with SKIP LOCKED, so a session the application is updating
 * (a login extending its expiry) is neither waited for nor deleted: the next run sees it again.
 *
 * On a real deployment the table belongs to the Django application; taskgate never creates it
 * there. The DDL below is Django's own and is used only where taskgate owns the whole database
 * (the embedded development database and the tests).
 */

import pg from 'pg';
import { z } from 'zod';
import type { Sql, SqlClient } from '../../src/db/sql.js';
import type { CheckResult } from '../../src/task.js';
import { type DeleteRule, deleteInBatches } from '../_shared/batchDelete.js';
import { privilegeCheck } from '../_shared/checks.js';

const quote = (name: string) => pg.escapeIdentifier(name);

/** The task's settings: the table's name, for an application that renamed it. */
export const sessionSettings = z.object({
  DJANGO_SESSION_TABLE: z
    .string()
    .optional()
    .transform((value) => value?.trim() || 'django_session')
    .pipe(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain SQL table name'))
    .describe(
      "Django's session table, for an application that renamed it (a plain SQL name, found on the search path)",
    ),
});

export const DJANGO_SESSION_DDL = `create table if not exists "django_session" (
  "session_key" varchar(40) not null primary key,
  "session_data" text not null,
  "expire_date" timestamp with time zone not null
);
create index if not exists "django_session_expire_date_a5c62663" on "django_session" ("expire_date");
create index if not exists "django_session_session_key_c0390e0f_like"
  on "django_session" ("session_key" varchar_pattern_ops);`;

class SessionTableError extends Error {
  override name = 'SessionTableError';
}

/** Fails with a message naming the table when it is not there; taskgate never creates it. */
async function checkSessionTable(client: SqlClient, table: string): Promise<void> {
  const { rows } = await client.query(
    `select current_database() as database, to_regclass($1)::text as found,
            (select count(*)::int from pg_attribute
              where attrelid = to_regclass($1) and attnum > 0 and not attisdropped
                and attname in ('session_key', 'expire_date')) as columns`,
    [quote(table)],
  );
  const found = rows[0] as { database: string; found: string | null; columns: number };
  if (!found.found) {
    throw new SessionTableError(
      `table "${table}" is not in database "${found.database}": check that DATABASE_URL names the ` +
        "application's database, that its `manage.py migrate` has run with django.contrib.sessions " +
        'installed and SESSION_ENGINE using the database, and DJANGO_SESSION_TABLE if it renamed the table',
    );
  }
  if (found.columns !== 2) {
    throw new SessionTableError(
      `table "${table}" has no session_key and expire_date columns: it is not Django's session table`,
    );
  }
}

/**
 * One batch deletes at most `batchSize` expired sessions, the oldest first, through the
 * `expire_date` index; a session locked by the application at that moment is skipped, not waited
 * for (the shared batched delete's indexed walk, ../_shared/batchDelete.ts).
 */
function expiredSessionsRule(table: string, cutoff: Date): DeleteRule {
  return {
    name: table,
    table,
    key: 'session_key',
    where: 't.expire_date < $1::timestamptz',
    values: [cutoff.toISOString()],
    indexed: 'expire_date',
  };
}

export interface ClearResult {
  cutoff: string;
  deleted: number;
  batches: number;
  durationMs: number;
  /** False when the run was cancelled between batches; the next run finishes the job. */
  complete: boolean;
}

export async function clearExpiredSessions(
  db: Sql,
  options: { table: string; cutoff: Date; batchSize: number; signal?: AbortSignal },
): Promise<ClearResult> {
  const started = performance.now();
  await checkSessionTable(db, options.table);
  const result = await deleteInBatches(db, expiredSessionsRule(options.table, options.cutoff), {
    batchSize: options.batchSize,
    batchTargetMs: 0,
    signal: options.signal,
  });
  return {
    cutoff: options.cutoff.toISOString(),
    deleted: result.deleted,
    batches: result.batches,
    durationMs: Math.round(performance.now() - started),
    complete: result.complete,
  };
}

/** What a run at `cutoff` would delete: read-only, for dry runs and doctor. */
export async function countExpiredSessions(client: SqlClient, table: string, cutoff: Date | string) {
  await checkSessionTable(client, table);
  const { rows } = await client.query(
    `select count(*)::bigint::text as total,
            (count(*) filter (where expire_date < $1::timestamptz))::bigint::text as expired
       from ${quote(table)}`,
    [cutoff instanceof Date ? cutoff.toISOString() : cutoff],
  );
  return { total: Number(rows[0]!.total), expired: Number(rows[0]!.expired) };
}

/** What `taskgate doctor` says about the table: present and how full. */
export async function checkSessionTableHealth(
  client: SqlClient,
  table: string,
  task: string,
): Promise<CheckResult[]> {
  try {
    await checkSessionTable(client, table);
  } catch (error) {
    if (!(error instanceof SessionTableError)) throw error;
    return [{ name: `${task}: table`, verdict: 'fail', message: error.message }];
  }
  // A batch locks its rows (FOR UPDATE: the UPDATE privilege) and deletes them.
  const privileges = await privilegeCheck(client, task, [
    { table, privileges: ['SELECT', 'UPDATE', 'DELETE'] },
  ]);
  if (privileges.verdict !== 'ok') {
    return [{ name: `${task}: table`, verdict: 'ok', message: `"${table}" present` }, privileges];
  }
  const { rows } = await client.query('select now() as now');
  const counts = await countExpiredSessions(client, table, rows[0]!.now as Date);
  const n = (value: number) => value.toLocaleString('en-US');
  return [
    {
      name: `${task}: table`,
      verdict: 'ok',
      message: `"${table}" present: ${n(counts.total)} sessions, ${n(counts.expired)} expired (the next run deletes those)`,
    },
    privileges,
  ];
}
