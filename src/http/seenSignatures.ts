import type { SqlClient } from '../db/sql.js';

const PRUNE_EVERY_MS = 60_000;

/**
 * The signed requests already accepted, kept in PostgreSQL so that a replay is refused by every
 * replica, not only the one that saw the request first: the primary key decides, and
 * `on conflict do nothing` makes the check and the record one atomic statement.
 */
export class SeenSignatures {
  private lastPrune = 0;

  /**
   * `now` is the clock the signature tolerance is checked against: expiries are set and pruned by
   * it too, never by the database's clock, so that a skew between the two cannot drop an entry
   * whose request is still inside the tolerance.
   */
  constructor(
    private readonly db: SqlClient,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records the ids of one accepted request (all expiring together); false when any of them was
   * already recorded (a replay). One statement: concurrent copies of a request contend for the
   * same first key, so exactly one of them records them all.
   */
  async remember(ids: readonly string[], expiresAt: Date): Promise<boolean> {
    const { rows } = await this.db.query(
      `insert into taskgate.seen_signature (signature, expires_at)
       select id, $2 from unnest($1::text[]) as id
       on conflict (signature) do nothing
       returning signature`,
      [ids, expiresAt],
    );
    await this.pruneWhenDue();
    return rows.length === ids.length;
  }

  /** Whether an id is recorded (an ended status-page session). */
  async has(id: string): Promise<boolean> {
    const { rows } = await this.db.query('select 1 from taskgate.seen_signature where signature = $1', [id]);
    return rows.length > 0;
  }

  /**
   * Drops entries past their expiry: their requests are refused by the timestamp check anyway.
   * At most once a minute per process, so the table stays small without a timer to manage.
   */
  private async pruneWhenDue(): Promise<void> {
    const now = this.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    // A failed prune costs nothing but table size; the request it rides on was already accepted.
    await this.db
      .query('delete from taskgate.seen_signature where expires_at < $1', [new Date(now)])
      .catch(() => undefined);
  }
}
