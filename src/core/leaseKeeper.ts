import type { Db, Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { renewLeases } from './leases.js';
import type { RunLogCapture } from './runLog.js';
import { checkpointRunLogs, type RunLogCheckpoint } from './runs.js';

/** How often at most a cancel request waits to be noticed: the renewal period is never longer. */
export const CANCEL_POLL_MS = 2_000;

export interface HeldRun {
  /**
   * performance.now() when the statement that took the lease was sent: the lease lasts its ttl
   * from then at least, on the database's clock.
   */
  since: number;
  /** The lease is gone: the run must stop. */
  onLost: (reason: string) => void;
  /** An operator asked the run to stop (told once). */
  onCancel?: (request: { by: string; reason: string | null }) => void;
  /** What the run logs: saved after each renewal of its lease when it changed. */
  log?: RunLogCapture;
}

interface Held extends HeldRun {
  cancelled: boolean;
  /** performance.now() when the last successful renewal was sent: the lease lasts ttl from then at least. */
  renewedAt: number;
}

/**
 * Keeps this process's leases alive: one statement every third of a lease (at most every
 * CANCEL_POLL_MS) renews all of them and brings back the cancel requests on their runs, so a
 * cancel asked of another replica reaches its run within one renewal period. The renewal has a
 * connection of its own (Db.reserved): tasks holding every connection of the pool cannot starve it.
 * After a renewal, what the renewed runs logged since the last one is saved in one more statement
 * (src/core/runLog.ts), apart from the renewal so that a slow or refused write never delays a lease.
 * A run learns at once that its lease is gone, either because the renewal found it taken over,
 * or because renewals have failed for so long that the lease may have expired on the database:
 * one renewal period before that moment it is told to stop, so that it stops before anyone else
 * can take the task. `remainingMs` says the same synchronously, by the monotonic clock, for the
 * run's SQL to check before it sends anything (src/core/runSql.ts): a timer can fire late.
 */
export class LeaseKeeper {
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | undefined;
  private renewing = false;
  private checkpointing = false;
  private readonly renewals: Sql;
  private readonly checkpoints: Sql;

  constructor(
    db: Db,
    private readonly ttlMs: number,
    private readonly logger: Logger,
  ) {
    // Each renewal gets at most one renewal period: a frozen database is noticed in time.
    this.renewals = db.reserved.handle({ timeoutMs: this.renewMs });
    this.checkpoints = db.handle({ timeoutMs: this.renewMs });
  }

  get renewMs(): number {
    return Math.max(100, Math.min(CANCEL_POLL_MS, Math.floor(this.ttlMs / 3)));
  }

  hold(runId: string, run: HeldRun): void {
    this.held.set(runId, { ...run, cancelled: false, renewedAt: run.since });
    if (!this.timer) {
      this.timer = setInterval(() => void this.renew(), this.renewMs);
      this.timer.unref();
    }
  }

  drop(runId: string): void {
    this.held.delete(runId);
    if (this.held.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * How long the run's lease is still known to hold (ms), by the monotonic clock now: from the
   * sending of its last successful renewal (or of the claim), the lease's ttl less one renewal
   * period of margin. 0 or less once it is lost or no longer held here; at 0 or less the run is
   * told to stop, if no timer has told it yet.
   */
  remainingMs(runId: string): number {
    const held = this.held.get(runId);
    if (!held) return 0;
    const remaining = held.renewedAt + this.ttlMs - this.renewMs - performance.now();
    if (remaining <= 0) this.lose(runId, this.unrenewed(held));
    return remaining;
  }

  private async renew(): Promise<void> {
    if (this.renewing || this.held.size === 0) return;
    // A lease no longer known to hold is lost here, not renewed: after a pause, this timer can
    // fire long after the lease may have been taken over.
    const ids = [...this.held.keys()].filter((id) => this.remainingMs(id) > 0);
    if (ids.length === 0) return;
    this.renewing = true;
    const sentAt = performance.now();
    try {
      const renewed = await renewLeases(this.renewals, ids, this.ttlMs);
      for (const id of ids) {
        const held = this.held.get(id);
        if (!held) continue;
        const renewal = renewed.get(id);
        if (!renewal) {
          this.lose(id, 'lost its lease: the run was taken over or marked abandoned');
          continue;
        }
        held.renewedAt = Math.max(held.renewedAt, sentAt);
        if (renewal.cancel) this.cancel(id, renewal.cancel);
      }
      void this.checkpoint(ids.filter((id) => renewed.has(id)));
    } catch (error) {
      this.logger.warn({ err: error, runIds: ids }, 'could not renew run leases');
      const now = performance.now();
      for (const [id, held] of this.held) {
        // Stop one renewal period before the lease can have expired on the database.
        if (now - held.renewedAt >= this.ttlMs - this.renewMs) this.lose(id, this.unrenewed(held));
      }
    } finally {
      this.renewing = false;
    }
  }

  /**
   * Saves the logs of `ids` that changed since their last checkpoint. One at a time: while one is
   * under way, the next renewal's is skipped, and its lines go with the one after.
   */
  private async checkpoint(ids: string[]): Promise<void> {
    if (this.checkpointing) return;
    const taken: { runId: string; log: RunLogCheckpoint; capture: RunLogCapture }[] = [];
    for (const id of ids) {
      const capture = this.held.get(id)?.log;
      const log = capture?.checkpoint();
      if (capture && log) taken.push({ runId: id, log, capture });
    }
    if (taken.length === 0) return;
    this.checkpointing = true;
    try {
      await checkpointRunLogs(this.checkpoints, taken);
      for (const { log, capture } of taken) capture.checkpointed(log);
    } catch (error) {
      this.logger.warn(
        { err: error, runIds: taken.map((t) => t.runId) },
        'could not save what running runs logged so far',
      );
    } finally {
      this.checkpointing = false;
    }
  }

  /** Tells a held run, once, that an operator asked it to stop. */
  cancel(id: string, request: { by: string; reason: string | null }): void {
    const held = this.held.get(id);
    if (!held || held.cancelled) return;
    held.cancelled = true;
    held.onCancel?.(request);
  }

  /** Why a lease not renewed in time is lost. */
  private unrenewed(held: Held): string {
    const ms = Math.round(performance.now() - held.renewedAt);
    return `lost its lease: it could not be renewed for ${ms} ms (RUN_LEASE_MS is ${this.ttlMs}): the database was out of reach, or this process was paused`;
  }

  private lose(id: string, reason: string): void {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    held.onLost(reason);
  }
}
