import type { SqlClient } from '../db/sql.js';

const PRUNE_EVERY_MS = 60_000;
/**
 * How long past its expiry an entry is kept, by the database's clock: more than any skew between
 * the database and a replica that doctor lets pass (it fails beyond SIGNATURE_TOLERANCE_SECONDS,
 * at most an hour). A replica whose clock is behind still accepts a request after its expiry by
 * another clock; its entry must outlive that. Keeping an hour more costs a few rows.
 */
const PRUNE_MARGIN = '1 hour';

/**
 * The signed requests already accepted, kept in PostgreSQL so that a replay is refused by every
 * replica, not only the one that saw the request first: the primary key decides, and
 * `on conflict do nothing` makes the check and the record one atomic statement.
 */
export class SeenSignatures {
  private lastPrune = 0;

  /**
   * `now` says when a prune is due. Expiries are set by the clock the tolerance is checked against
   * (each replica's own), and pruned by the one clock every replica shares, the database's, with a
   * margin: so that no replica, whatever its clock, drops an entry another still needs.
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
      .query(
        `delete from taskgate.seen_signature where expires_at < clock_timestamp() - interval '${PRUNE_MARGIN}'`,
      )
      .catch(() => undefined);
  }
}
