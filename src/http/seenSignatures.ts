import type { SqlClient } from '../db/sql.js';

const PRUNE_EVERY_MS = 60_000;

/**
 * The signatures already accepted, kept in PostgreSQL so that a replay is refused by every
 * replica, not only the one that saw the request first: the primary key decides, and
 * `on conflict do nothing` makes the check and the record one atomic statement.
 */
export class SeenSignatures {
  private lastPrune = 0;

  constructor(private readonly db: SqlClient) {}

  /** Records the signature; false when it was already recorded (a replay). */
  async remember(signature: string, expiresAt: Date): Promise<boolean> {
    const { rows } = await this.db.query(
      `insert into taskgate.seen_signature (signature, expires_at) values ($1, $2)
       on conflict (signature) do nothing
       returning signature`,
      [signature, expiresAt],
    );
    await this.pruneWhenDue();
    return rows.length === 1;
  }

  /**
   * Drops entries past their expiry: their requests are refused by the timestamp check anyway.
   * At most once a minute per process, so the table stays small without a timer to manage.
   */
  private async pruneWhenDue(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    // A failed prune costs nothing but table size; the request it rides on was already accepted.
    await this.db
      .query('delete from taskgate.seen_signature where expires_at < now()')
      .catch(() => undefined);
  }
}
