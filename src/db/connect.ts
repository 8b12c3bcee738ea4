import { TaskgateError } from '../errors.js';

/**
 * PostgreSQL's answers that no retry will change: the URL names a database that is not there, or
 * a role that may not use it. taskgate never creates a database (a typo must not become an empty
 * database that every run "succeeds" on), so these stop it with a line naming the database.
 */
const PERMANENT = new Set([
  '3D000', // invalid_catalog_name: no such database
  '28P01', // invalid_password
  '28000', // invalid_authorization_specification: no such role, pg_hba.conf refuses it
  '42501', // insufficient_privilege: no CONNECT on the database
]);

/** `"name" on host:port as role`, from a URL; never the password. */
export function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url);
    const name = decodeURIComponent(parsed.pathname.replace(/^\//, '')) || parsed.username || 'postgres';
    const role = parsed.username ? ` as "${decodeURIComponent(parsed.username)}"` : '';
    return `"${name}" on ${parsed.host || 'localhost'}${role}`;
  } catch {
    return 'of DATABASE_URL';
  }
}

/**
 * The error to stop with when `error` (from a first connection) says the database does not exist
 * or refuses the role: CONFIG_INVALID naming the database. Null for anything else (a server
 * down or unreachable), which the caller may retry.
 */
export function permanentConnectionError(error: unknown, url: string): TaskgateError | null {
  // The driver's error may come wrapped (DATABASE_UNAVAILABLE with it as the cause).
  let pgError = error as { code?: string; message?: string; cause?: unknown } | undefined;
  while (pgError && !PERMANENT.has(pgError.code ?? '')) pgError = pgError.cause as typeof pgError;
  if (!pgError) return null;
  const code = pgError.code!;
  // PostgreSQL's own words name the role or the privilege; they never hold the password.
  const problem = code === '3D000' ? 'does not exist' : `refused the connection (${pgError?.message})`;
  return new TaskgateError(
    'CONFIG_INVALID',
    `database ${describeDatabase(url)} ${problem}: check DATABASE_URL (taskgate never creates a database)`,
    { sqlState: code },
  );
}
