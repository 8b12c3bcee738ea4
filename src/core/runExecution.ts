import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Db, DbHandle } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { DEFAULT_TIMEOUT_MS, resultOfFailure } from '../task.js';
import type { LeaseKeeper } from './leaseKeeper.js';
import type { RegisteredTask } from './registry.js';
import type { RunLogCapture } from './runLog.js';
import { LeaseLost, runSql } from './runSql.js';
import type { RunOutcome, RunRecord } from './runs.js';

// Executing a run's task: its AbortSignal fires on its time-out, on a cancel request and when its
// lease is lost (its SQL in flight is then cancelled); the task gets its context (SQL fenced by the
// lease, src/core/runSql.ts; the ORM when it reads it) and what it returned or threw becomes the
// run's outcome.

/** The abort reason of a run an operator cancelled. */
export class RunCancelled extends Error {
  override name = 'RunCancelled';
  constructor(
    readonly by: string,
    readonly reason: string | null,
  ) {
    super(`cancelled by ${by}${reason ? `: ${reason}` : ''}`);
  }
}

/** A run this process is running. */
export interface Inflight {
  abort: AbortController;
  done: Promise<RunRecord>;
  run: RunRecord;
  /** Set once the run's end has been recorded (by the run, or by a bounded shutdown). */
  ended: boolean;
  /** What the run has logged so far: saved with its lease renewals, kept whole with its end. */
  log: RunLogCapture;
}

/**
 * One execution of a run's task. Made when the run starts: its time-out runs from then, and its
 * lease is held (kept renewed) with what losing it or a cancel request does to the signal.
 */
export class TaskExecution {
  private readonly timeout: NodeJS.Timeout;
  /** The task's `ctx.db`. */
  private readonly sql: DbHandle;
  private readonly logger: Logger;

  constructor(
    private readonly entry: Inflight,
    private readonly registered: RegisteredTask,
    deps: {
      db: Db;
      keeper: LeaseKeeper;
      logger: Logger;
      /** performance.now() when the claim that took the lease was sent. */
      claimedAt: number;
      /** False only in bench/flush.ts, to measure what fencing costs. */
      fenced: boolean;
    },
  ) {
    const { abort } = entry;
    const { definition } = registered;
    const { db, keeper, logger } = deps;
    this.logger = logger;
    const timeoutMs = definition.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.timeout = setTimeout(() => abort.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const runId = entry.run.id;
    this.sql = runSql(
      db,
      { task: definition.name, runId, timeoutMs: definition.queryTimeoutMs ?? db.queryTimeoutMs },
      keeper,
      { fenced: deps.fenced },
    );
    keeper.hold(runId, {
      since: deps.claimedAt,
      onLost: (reason) => {
        logger.error({ reason }, 'run lost its lease: stopping it and cancelling its SQL');
        abort.abort(new LeaseLost(reason));
        void this.sql.cancel();
      },
      onCancel: ({ by, reason }) => {
        logger.warn({ cancelledBy: by, reason }, 'cancel requested: stopping the run');
        abort.abort(new RunCancelled(by, reason));
      },
      log: entry.log,
    });
  }

  /** Calls the task and gives its outcome; a task stopped by its signal is cancelled or interrupted. */
  async run(
    params: Record<string, unknown>,
    deps: { orm?: () => MikroORM; now?: (startedAt: Date) => Date },
  ): Promise<RunOutcome> {
    const { orm } = deps;
    const { definition, settings } = this.registered;
    const started = this.entry.run;
    const { abort } = this.entry;
    let em: EntityManager | undefined;
    try {
      const result = await definition.run({
        params,
        db: this.sql,
        get em() {
          em ??= orm?.().em.fork();
          return em;
        },
        logger: this.logger,
        now: deps.now?.(new Date(started.startedAt)) ?? new Date(started.startedAt),
        signal: abort.signal,
        dryRun: started.dryRun,
        runId: started.id,
        settings,
      });
      const json = JSON.parse(JSON.stringify(result ?? null));
      return abort.signal.aborted
        ? { status: stoppedStatus(abort.signal), result: json, error: reasonOf(abort.signal) }
        : { status: 'succeeded', result: json };
    } catch (error) {
      // What the task did before it failed or was stopped, when it says (a TaskFailure).
      const result = resultOfFailure(error);
      const outcome: RunOutcome = abort.signal.aborted
        ? { status: stoppedStatus(abort.signal), error: reasonOf(abort.signal), result }
        : { status: 'failed', error: (error as Error)?.message ?? String(error), result };
      if (!abort.signal.aborted) this.logger.error({ err: error }, 'task failed');
      return outcome;
    } finally {
      clearTimeout(this.timeout);
    }
  }
}

/** A run that stopped on its signal: cancelled by an operator, or interrupted (shutdown, time-out, lost lease). */
function stoppedStatus(signal: AbortSignal): 'cancelled' | 'interrupted' {
  return signal.reason instanceof RunCancelled ? 'cancelled' : 'interrupted';
}

function reasonOf(signal: AbortSignal): string {
  const reason = signal.reason as Error | undefined;
  return reason?.message ?? 'interrupted';
}
