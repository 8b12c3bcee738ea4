import type { Db } from './sql.js';

/**
 * Asks the database for `select 1`; resolves with null when it answers within `timeoutMs`, else
 * the reason (for the log: it may name hosts and roles, so it is never sent to a client).
 */
export async function checkDatabase(db: Db, timeoutMs = 3_000): Promise<string | null> {
  try {
    await db.query('select 1', [], { timeoutMs });
    return null;
  } catch (error) {
    const cause = (error as Error).cause as Error | undefined;
    return cause?.message || (error as Error).message || 'database unavailable';
  }
}
