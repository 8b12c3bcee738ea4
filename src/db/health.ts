import type { Db } from './sql.js';

/**
 * Whether the database can take taskgate's work now; resolves with null when it can, else the
 * reason (for the log: it may name hosts and roles, so it is never sent to a client). Answering is
 * not enough: a database that is read-only (`default_transaction_read_only`, a standby after a
 * failover), a role that may no longer log in (NOLOGIN, an expired password) or a database closed
 * to connections would fail every trigger while `select 1` still passed on a pooled connection.
 */
export async function checkDatabase(db: Db, timeoutMs = 3_000): Promise<string | null> {
  let row: Record<string, unknown> | undefined;
  try {
    ({
      rows: [row],
    } = await db.query(
      `select current_setting('transaction_read_only') = 'on' as read_only,
              r.rolcanlogin as can_login,
              coalesce(r.rolvaliduntil > now(), true) as password_valid,
              d.datallowconn as allows_connections
         from pg_roles r, pg_database d
        where r.rolname = current_user and d.datname = current_database()`,
      [],
      { timeoutMs },
    ));
  } catch (error) {
    const cause = (error as Error).cause as Error | undefined;
    return cause?.message || (error as Error).message || 'database unavailable';
  }
  if (!row) return null;
  if (row.read_only) return 'the database is read-only (default_transaction_read_only, or a standby)';
  if (!row.can_login) return "taskgate's role may not log in (NOLOGIN): new connections are refused";
  if (!row.password_valid)
    return "taskgate's role's password has expired (VALID UNTIL): new connections are refused";
  if (!row.allows_connections) return 'the database refuses new connections (ALLOW_CONNECTIONS false)';
  return null;
}
