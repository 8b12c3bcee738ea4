import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { Db, Sql } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { DEFAULT_TIMEOUT_MS } from '../task.js';
import type { LeaseKeeper } from './leaseKeeper.js';
import type { RegisteredTask } from './registry.js';
import type { RunLogCapture } from './runLog.js';
import type { RunOutcome, RunRecord } from './runs.js';

// Executing a run's task: its AbortSignal fires on its time-out, on a cancel request and when its
// lease is lost; the task gets its context (SQL with its deadline, the ORM when it reads it) and
// what it returned or threw becomes the run's outcome.

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

  constructor(
    private readonly entry: Inflight,
    private readonly registered: RegisteredTask,
    keeper: LeaseKeeper,
    private readonly logger: Logger,
  ) {
    const { abort } = entry;
    const timeoutMs = registered.definition.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.timeout = setTimeout(() => abort.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    keeper.hold(entry.run.id, {
      onLost: (reason) => {
        logger.error({ reason }, 'run lost its lease: stopping it');
        abort.abort(new Error(reason));
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
    deps: { db: Db; orm?: () => MikroORM; now?: (startedAt: Date) => Date },
  ): Promise<RunOutcome> {
    const { db, orm } = deps;
    const { definition, settings } = this.registered;
    const started = this.entry.run;
    const { abort } = this.entry;
    const queryTimeoutMs = definition.queryTimeoutMs ?? db.queryTimeoutMs;
    const sql: Sql = {
      query: (text, values) => db.query(text, values, { timeoutMs: queryTimeoutMs }),
      transaction: (fn, options) => db.transaction(fn, { timeoutMs: queryTimeoutMs, ...options }),
    };
    let em: EntityManager | undefined;
    try {
      const result = await definition.run({
        params,
        db: sql,
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
      const outcome: RunOutcome = abort.signal.aborted
        ? { status: stoppedStatus(abort.signal), error: reasonOf(abort.signal) }
        : { status: 'failed', error: (error as Error)?.message ?? String(error) };
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
