import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import pRetry from 'p-retry';
import type { Config } from '../config.js';
import { type Db, isDatabaseUnavailable, type Sql, type SqlClient } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import { createRunLogger, type Logger } from '../logger.js';
import { DEFAULT_TIMEOUT_MS } from '../task.js';
import { LeaseKeeper } from './leaseKeeper.js';
import { takeLease } from './leases.js';
import { activePause, pausedError } from './pauses.js';
import type { Registry } from './registry.js';
import { RunLogCapture } from './runLog.js';
import { checkSameRequest, validateParams } from './runRequest.js';
import {
  abandonExpiredRuns,
  abandonRunsOf,
  findRun,
  findRunByIdempotencyKey,
  findRunningRun,
  finishRun,
  insertRun,
  type RunOutcome,
  type RunRecord,
  requestCancel,
} from './runs.js';

export interface RunRequest {
  task: string;
  /** Raw parameters, validated against the task's schema (unknown keys refused). */
  params?: unknown;
  dryRun?: boolean;
  /** Who asked: `cli`, `http`, ... */
  trigger: string;
  /** A retry with the same key gets the first run back instead of a second run. */
  idempotencyKey?: string | null;
  /** The HTTP request that asked for the run, so its log lines join the request's. */
  requestId?: string;
  /** The run this one repeats, and why (a rerun). */
  rerunOf?: string;
  rerunReason?: string | null;
}

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

export interface StartedRun {
  /** The run as recorded when it started (or the earlier run with the same idempotency key). */
  run: RunRecord;
  /** True when `run` is an earlier run found by its idempotency key. */
  replayed: boolean;
}

/** Told of every run this process starts and finishes: metrics, alerts, heartbeats. */
export interface RunListener {
  onStart?(run: RunRecord): void | Promise<void>;
  onFinish?(run: RunRecord): void | Promise<void>;
}

export interface RunnerDeps {
  db: Db;
  /**
   * MikroORM, for tasks that read `ctx.em`; optional. Called only when a task reads it, so that
   * the ORM is loaded only by processes whose tasks use it (src/db/lazyOrm.ts).
   */
  orm?: () => MikroORM;
  registry: Registry;
  logger: Logger;
  config: Config;
  listeners?: RunListener[];
  /** How often `wait` looks at a run that another process is running. */
  pollMs?: number;
}

/** After the grace period and the abort, how long tasks get to stop before their SQL is cancelled. */
export const ABORT_SETTLE_MS = 2_000;
/** After cancelling their SQL, how long before runs that still have not stopped are recorded interrupted. */
export const CANCEL_SETTLE_MS = 1_000;
/** How long recording an end is retried while the database is away (outside shutdown). */
const END_RECORD_BUDGET_MS = 120_000;

interface Inflight {
  abort: AbortController;
  done: Promise<RunRecord>;
  run: RunRecord;
  /** Set once the run's end has been recorded (by the run, or by a bounded shutdown). */
  ended: boolean;
  /** What the run has logged so far: saved with its lease renewals, kept whole with its end. */
  log: RunLogCapture;
}

/**
 * The one runner: HTTP and the CLI both start runs here, and nowhere else. It validates params,
 * takes the task's lease (src/core/leases.ts) and records the run in one transaction, keeps the lease
 * alive while the task runs, gives the task its AbortSignal, records the end (fenced by the
 * lease), and logs the run.
 */
export class Runner {
  private readonly inflight = new Map<string, Inflight>();
  private closing = false;
  private closed: Promise<void> | undefined;
  private readonly listeners: RunListener[];
  private readonly keeper: LeaseKeeper;
  /** Names this process in the lease table, for whoever reads it during an incident. */
  private readonly holder = `${os.hostname()}:${process.pid}`;

  constructor(private readonly deps: RunnerDeps) {
    this.listeners = deps.listeners ?? [];
    this.keeper = new LeaseKeeper(deps.db, deps.config.runLeaseMs, deps.logger);
  }

  /** Starts a run and returns once it is recorded; `wait(run.id)` gives its end. */
  async start(request: RunRequest): Promise<StartedRun> {
    if (this.closing) {
      throw new TaskgateError('SHUTTING_DOWN', 'taskgate is shutting down and starts no new runs');
    }
    const task = this.deps.registry.require(request.task);
    const name = task.definition.name;
    const params = validateParams(task, request.params);
    const dryRun = request.dryRun ?? false;
    const key = request.idempotencyKey ?? null;
    const id = randomUUID();

    const decided: StartDecision = await this.deps.db
      .transaction<StartDecision>(async (tx) => {
        if (key) {
          const earlier = await findRunByIdempotencyKey(tx, name, key);
          if (earlier) checkSameRequest(earlier, params, dryRun);
          if (earlier?.status === 'succeeded') return { replay: earlier };
        }
        // Checked here, in the one place every run starts, so HTTP, the CLI and the scheduler all see it.
        const pause = await activePause(tx, name);
        if (pause) throw pausedError(pause);
        const leased = await takeLease(tx, {
          task: name,
          runId: id,
          holder: this.holder,
          ttlMs: this.deps.config.runLeaseMs,
        });
        if (!leased) return this.whyBusy(tx, name, key);
        const abandoned = await abandonRunsOf(tx, name);
        const run = await insertRun(tx, {
          id,
          task: name,
          trigger: request.trigger,
          params,
          dryRun,
          idempotencyKey: key,
          rerunOf: request.rerunOf ?? null,
          rerunReason: request.rerunReason ?? null,
        });
        // The key's run succeeded between the look-up and the lease: roll the lease back, replay it.
        if (!run) throw new KeyTaken();
        return { run, abandoned };
      })
      .catch(async (error) => {
        if (!(error instanceof KeyTaken)) throw error;
        const replay = await findRunByIdempotencyKey(this.deps.db, name, key!);
        if (!replay) throw error;
        return { replay };
      });

    if ('replay' in decided) return { run: decided.replay, replayed: true };
    if ('busyRunId' in decided) {
      throw new TaskgateError('TASK_BUSY', `${name} is already running`, { runId: decided.busyRunId });
    }
    const { run, abandoned } = decided;
    if (abandoned.length > 0) {
      this.deps.logger.warn(
        { task: name, runIds: abandoned },
        'took over a task whose lease had expired: its runs are marked abandoned',
      );
    }
    const abort = new AbortController();
    const entry: Inflight = {
      abort,
      run,
      ended: false,
      done: Promise.resolve(run),
      log: new RunLogCapture(),
    };
    entry.done = this.execute(entry, params, request.requestId).finally(() => {
      this.keeper.drop(run.id);
      this.inflight.delete(run.id);
    });
    // A run started with `Prefer: respond-async` has nobody waiting: its failure to record is logged, not thrown.
    entry.done.catch((error) =>
      this.deps.logger.error({ err: error, runId: run.id }, 'could not record the end of a run'),
    );
    this.inflight.set(run.id, entry);
    return { run, replayed: false };
  }

  /** Starts a run and waits for its end. */
  async run(request: RunRequest): Promise<RunRecord> {
    const { run } = await this.start(request);
    return this.wait(run.id);
  }

  /**
   * The run once it has finished: at once for a run this process is running, otherwise by
   * looking at its record until it is no longer `running` (a run of another replica). A database
   * that is away for a while only makes the look take longer.
   */
  async wait(runId: string, signal?: AbortSignal): Promise<RunRecord> {
    const local = this.inflight.get(runId);
    if (local) return local.done;
    for (;;) {
      const run = await findRun(this.deps.db, runId).catch((error) => {
        if (isDatabaseUnavailable(error) && signal) return undefined;
        throw error;
      });
      if (run === null) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${runId}`);
      if (run && run.status !== 'running') return run;
      signal?.throwIfAborted();
      await delay(this.deps.pollMs ?? 500, undefined, { signal });
    }
  }

  /**
   * Asks a running run to stop, wherever it runs: the request is written on the run's row, and
   * the process running it reads it with its next lease renewal (at most CANCEL_POLL_MS later);
   * a run of this process is told at once. The run stops at its next safe point and is recorded
   * `cancelled`. RUN_NOT_FOUND for no such run, RUN_ENDED (with its status) for one that ended.
   */
  async cancel(runId: string, request: { by: string; reason: string | null }): Promise<RunRecord> {
    const marked = await requestCancel(this.deps.db, runId, request);
    if (!marked) {
      const run = await findRun(this.deps.db, runId);
      if (!run) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${runId}`);
      throw new TaskgateError('RUN_ENDED', `run ${runId} has already ended (${run.status})`, {
        runId,
        runStatus: run.status,
      });
    }
    // A run of this process need not wait for the next renewal.
    if (marked.cancel) this.keeper.cancel(runId, marked.cancel);
    return marked;
  }

  /** Runs in progress in this process. */
  get activeCount(): number {
    return this.inflight.size;
  }

  /**
   * Marks runs whose lease has expired as abandoned: their process died or lost the database
   * for longer than a lease. `serve` calls it periodically; read-only commands never do.
   */
  async sweepAbandoned(): Promise<string[]> {
    const swept = await abandonExpiredRuns(this.deps.db);
    if (swept.length > 0) {
      this.deps.logger.warn(
        { runIds: swept.map((r) => r.id), tasks: [...new Set(swept.map((r) => r.task))] },
        'marked runs whose process stopped (lease expired) as abandoned',
      );
    }
    return swept.map((r) => r.id);
  }

  /**
   * Stops taking runs, lets running ones finish for up to `graceMs`, then aborts them. Bounded
   * whatever the tasks do: ABORT_SETTLE_MS later their SQL in flight is cancelled, and
   * CANCEL_SETTLE_MS after that runs that still have not stopped are recorded interrupted here.
   */
  close(graceMs: number): Promise<void> {
    this.closed ??= this.shutDown(graceMs);
    return this.closed;
  }

  private async shutDown(graceMs: number): Promise<void> {
    this.closing = true;
    if (this.inflight.size > 0) {
      await this.settled(graceMs);
      if (this.inflight.size > 0) {
        this.deps.logger.warn({ runIds: [...this.inflight.keys()] }, 'grace period over: interrupting runs');
        for (const run of this.inflight.values()) run.abort.abort(new Error('interrupted by shutdown'));
        await this.settled(ABORT_SETTLE_MS);
      }
      if (this.inflight.size > 0) {
        this.deps.logger.warn(
          { runIds: [...this.inflight.keys()] },
          'runs did not stop when asked: cancelling their SQL',
        );
        await this.deps.db.cancelAll();
        await this.settled(CANCEL_SETTLE_MS);
      }
      for (const entry of [...this.inflight.values()]) {
        if (entry.ended) continue;
        entry.ended = true;
        this.keeper.drop(entry.run.id);
        const cancelled = entry.abort.signal.reason instanceof RunCancelled;
        await finishRun(
          this.deps.db,
          entry.run.id,
          {
            status: cancelled ? 'cancelled' : 'interrupted',
            error: `${cancelled ? entry.abort.signal.reason.message : 'interrupted by shutdown'} (the task did not stop when asked)`,
          },
          entry.log.end(),
        ).catch((error) =>
          this.deps.logger.error({ err: error, runId: entry.run.id }, 'could not record an interrupted run'),
        );
      }
    }
    this.keeper.stop();
  }

  /** Resolves once every run in flight has settled, or `ms` have passed. */
  private async settled(ms: number): Promise<void> {
    const stop = new AbortController();
    await Promise.race([
      Promise.allSettled([...this.inflight.values()].map((run) => run.done)),
      delay(ms, undefined, { signal: stop.signal }).catch(() => undefined),
    ]);
    stop.abort();
  }

  /** Inside the start transaction, once the lease was refused: a replay of the key's run, or who is busy. */
  private async whyBusy(tx: SqlClient, task: string, key: string | null): Promise<StartDecision> {
    if (key) {
      const earlier = await findRunByIdempotencyKey(tx, task, key);
      if (earlier && (earlier.status === 'running' || earlier.status === 'succeeded'))
        return { replay: earlier };
    }
    const running = await findRunningRun(tx, task);
    return { busyRunId: running?.id ?? null };
  }

  private async execute(
    entry: Inflight,
    params: Record<string, unknown>,
    requestId: string | undefined,
  ): Promise<RunRecord> {
    const { registry, db, orm } = this.deps;
    const started = entry.run;
    const { abort } = entry;
    const registered = registry.require(started.task);
    const { definition } = registered;
    const timeoutMs = definition.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = setTimeout(() => abort.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const logger = createRunLogger(
      this.deps.logger,
      { task: started.task, runId: started.id, ...(requestId ? { requestId } : {}) },
      entry.log,
    );
    this.keeper.hold(started.id, {
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
    logger.info(
      { trigger: started.trigger, dryRun: started.dryRun, attempt: started.attempt, status: 'running' },
      'run started',
    );
    await this.notify('onStart', started, logger);

    const queryTimeoutMs = definition.queryTimeoutMs ?? db.queryTimeoutMs;
    const sql: Sql = {
      query: (text, values) => db.query(text, values, { timeoutMs: queryTimeoutMs }),
      transaction: (fn, options) => db.transaction(fn, { timeoutMs: queryTimeoutMs, ...options }),
    };
    let outcome: RunOutcome;
    let em: EntityManager | undefined;
    try {
      const result = await definition.run({
        params,
        db: sql,
        get em() {
          em ??= orm?.().em.fork();
          return em;
        },
        logger,
        now: new Date(started.startedAt),
        signal: abort.signal,
        dryRun: started.dryRun,
        runId: started.id,
        settings: registered.settings,
      });
      const json = JSON.parse(JSON.stringify(result ?? null));
      outcome = abort.signal.aborted
        ? { status: stoppedStatus(abort.signal), result: json, error: reasonOf(abort.signal) }
        : { status: 'succeeded', result: json };
    } catch (error) {
      outcome = abort.signal.aborted
        ? { status: stoppedStatus(abort.signal), error: reasonOf(abort.signal) }
        : { status: 'failed', error: (error as Error)?.message ?? String(error) };
      if (!abort.signal.aborted) logger.error({ err: error }, 'task failed');
    } finally {
      clearTimeout(timeout);
    }

    if (entry.ended) {
      // A bounded shutdown recorded this run as interrupted while the task would not stop.
      return (await findRun(db, started.id).catch(() => null)) ?? { ...started, ...outcome };
    }
    const finished = await this.recordEnd(entry, outcome, logger);
    const level = finished.status === 'succeeded' ? 'info' : 'warn';
    logger[level](
      {
        status: finished.status,
        durationMs: finished.durationMs,
        ...(finished.error ? { error: finished.error } : {}),
      },
      'run finished',
    );
    await this.notify('onFinish', finished, logger);
    return finished;
  }

  /**
   * Records the end, retrying while the database is away (the lease is kept renewed meanwhile,
   * so a short outage costs nothing). A run fenced off (its lease was taken over) is not written:
   * the record as the new owner left it is returned.
   */
  private async recordEnd(entry: Inflight, outcome: RunOutcome, logger: Logger): Promise<RunRecord> {
    const { db } = this.deps;
    return pRetry(
      async () => {
        if (entry.ended) return (await findRun(db, entry.run.id)) ?? entry.run;
        const finished = await finishRun(db, entry.run.id, outcome, entry.log.end());
        entry.ended = true;
        if (finished) return finished;
        logger.warn(
          { status: outcome.status },
          'the run had lost its lease: its end is not recorded over what the new owner wrote',
        );
        return (await findRun(db, entry.run.id)) ?? entry.run;
      },
      {
        // 0.5 s doubling to 5 s between tries, for at most the budget.
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 500,
        maxTimeout: 5_000,
        maxRetryTime: END_RECORD_BUDGET_MS,
        shouldRetry: ({ error, attemptNumber }) => {
          if (!isDatabaseUnavailable(error) || this.closing) return false;
          logger.warn({ attempt: attemptNumber }, 'could not record the end of the run yet: retrying');
          return true;
        },
      },
    );
  }

  private async notify(event: 'onStart' | 'onFinish', run: RunRecord, logger: Logger): Promise<void> {
    for (const listener of this.listeners) {
      try {
        await listener[event]?.(run);
      } catch (error) {
        logger.error({ err: error }, `run listener ${event} failed`);
      }
    }
  }
}

/** What the start transaction decided: a replay, a busy task, or a run started. */
type StartDecision =
  | { replay: RunRecord }
  | { busyRunId: string | null }
  | { run: RunRecord; abandoned: string[] };

/** Thrown inside the start transaction to roll the lease back when the key's run exists after all. */
class KeyTaken extends Error {}

/** A run that stopped on its signal: cancelled by an operator, or interrupted (shutdown, time-out, lost lease). */
function stoppedStatus(signal: AbortSignal): 'cancelled' | 'interrupted' {
  return signal.reason instanceof RunCancelled ? 'cancelled' : 'interrupted';
}

function reasonOf(signal: AbortSignal): string {
  const reason = signal.reason as Error | undefined;
  return reason?.message ?? 'interrupted';
}
