import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { setTimeout as delay } from 'node:timers/promises';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from '../config.js';
import { type Db, isDatabaseUnavailable } from '../db/sql.js';
import { TaskgateError } from '../errors.js';
import { createRunLogger, type Logger } from '../logger.js';
import { LeaseKeeper } from './leaseKeeper.js';
import type { RegisteredTask, Registry } from './registry.js';
import { claimRun } from './runClaim.js';
import { recordEnd } from './runEnd.js';
import { type Inflight, TaskExecution } from './runExecution.js';
import { RunLogCapture } from './runLog.js';
import { validateParams } from './runRequest.js';
import { stopRuns } from './runShutdown.js';
import { abandonExpiredRuns, findRun, type RunRecord, requestCancel } from './runs.js';

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
  /**
   * A scheduler's fire: the run is its slot's, and `trigger` names the scheduler
   * (src/core/slots.ts). The slot is the one the database clock says, unless given (catch-up).
   * A task without a schedule runs as asked, with no slot.
   */
  scheduled?: { slot?: Date };
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
  /** A scheduler fired a slot here: it started the slot's run, or was answered with it (`duplicate`). */
  onScheduledFire?(fire: { task: string; scheduler: string; slot: string; duplicate: boolean }): void;
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
  /**
   * What a task is given as `now`. By default the run's start on the database clock; the tests
   * that compare a task with an upstream command frozen at one instant give that instant.
   */
  now?: (startedAt: Date) => Date;
  /**
   * False runs tasks with SQL that is not fenced by their lease: only bench/flush.ts does, to
   * measure what fencing costs. Never turned off anywhere else.
   */
  fencing?: boolean;
}

/**
 * The one runner: HTTP and the CLI both start runs here, and nowhere else. It validates params,
 * claims the run (src/core/runClaim.ts: the task's lease and the run's record in one transaction),
 * keeps the lease alive while the task runs (src/core/leaseKeeper.ts), executes the task with its
 * AbortSignal (src/core/runExecution.ts), records the end, fenced by the lease (src/core/runEnd.ts),
 * logs the run and tells its listeners; at shutdown it stops its runs in bounded steps
 * (src/core/runShutdown.ts).
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

    // The lease lasts its ttl from the claim's statement at least: counted from before it is sent.
    const claimedAt = performance.now();
    const decided = await claimRun(this.deps.db, {
      run: {
        id: randomUUID(),
        task: name,
        trigger: request.trigger,
        params,
        dryRun: request.dryRun ?? false,
        idempotencyKey: request.idempotencyKey ?? null,
        rerunOf: request.rerunOf ?? null,
        rerunReason: request.rerunReason ?? null,
      },
      holder: this.holder,
      ttlMs: this.deps.config.runLeaseMs,
      scheduled:
        request.scheduled && task.schedule
          ? { schedule: task.schedule, slot: request.scheduled.slot }
          : undefined,
    });

    if ('replay' in decided) {
      this.tellFire(request, decided.replay, true);
      return { run: decided.replay, replayed: true };
    }
    if ('busyRunId' in decided) {
      throw new TaskgateError('TASK_BUSY', `${name} is already running`, { runId: decided.busyRunId });
    }
    const { run, abandoned } = decided;
    this.tellFire(request, run, false);
    if (abandoned.length > 0) {
      this.deps.logger.warn(
        { task: name, runIds: abandoned },
        'took over a task whose lease had expired: its runs are marked abandoned',
      );
    }
    const entry: Inflight = {
      abort: new AbortController(),
      run,
      ended: false,
      done: Promise.resolve(run),
      log: new RunLogCapture(),
    };
    entry.done = this.execute(entry, task, params, { requestId: request.requestId, claimedAt }).finally(
      () => {
        this.keeper.drop(run.id);
        this.inflight.delete(run.id);
      },
    );
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
    await stopRuns(
      this.inflight,
      { db: this.deps.db, logger: this.deps.logger, keeper: this.keeper },
      graceMs,
    );
    this.keeper.stop();
  }

  /** A run from its start to its end: logged, its listeners told, its task executed, its end recorded. */
  private async execute(
    entry: Inflight,
    task: RegisteredTask,
    params: Record<string, unknown>,
    { requestId, claimedAt }: { requestId: string | undefined; claimedAt: number },
  ): Promise<RunRecord> {
    const { db } = this.deps;
    const started = entry.run;
    const logger = createRunLogger(
      this.deps.logger,
      { task: started.task, runId: started.id, ...(requestId ? { requestId } : {}) },
      entry.log,
    );
    const execution = new TaskExecution(entry, task, {
      db,
      keeper: this.keeper,
      logger,
      claimedAt,
      fenced: this.deps.fencing ?? true,
    });
    logger.info(
      { trigger: started.trigger, dryRun: started.dryRun, attempt: started.attempt, status: 'running' },
      'run started',
    );
    await this.notify('onStart', started, logger);

    const outcome = await execution.run(params, this.deps);

    if (entry.ended) {
      // A bounded shutdown recorded this run as interrupted while the task would not stop.
      return (await findRun(db, started.id).catch(() => null)) ?? { ...started, ...outcome };
    }
    const finished = await recordEnd(db, entry, outcome, logger, () => this.closing);
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

  /** Tells the listeners of a scheduled fire of a slot (metrics count them). */
  private tellFire(request: RunRequest, run: RunRecord, duplicate: boolean): void {
    if (!request.scheduled || !run.slot) return;
    for (const listener of this.listeners) {
      try {
        listener.onScheduledFire?.({ task: run.task, scheduler: request.trigger, slot: run.slot, duplicate });
      } catch (error) {
        this.deps.logger.error({ err: error }, 'run listener onScheduledFire failed');
      }
    }
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
