import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from './config.js';
import { TaskgateError } from './errors.js';
import { TaskLock } from './lock.js';
import type { Logger } from './logger.js';
import type { RegisteredTask, Registry } from './registry.js';
import {
  findRun,
  findRunByIdempotencyKey,
  findRunningRun,
  finishRun,
  insertRun,
  markAbandoned,
  type RunRecord,
  tasksWithRunningRows,
} from './runs.js';
import { DEFAULT_TIMEOUT_MS } from './task.js';

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
  orm: MikroORM;
  registry: Registry;
  logger: Logger;
  config: Config;
  listeners?: RunListener[];
  /** How often `wait` looks at a run that another process is running. */
  pollMs?: number;
}

/**
 * The one runner: HTTP and the CLI both start runs here, and nowhere else. It validates params,
 * holds the task's advisory lock for the whole run so runs of one task never overlap (in this
 * process or any other), records the run, gives the task its AbortSignal, and logs the run.
 */
export class Runner {
  /** Runs in progress in this process, by run id. */
  private readonly inflight = new Map<string, { abort: AbortController; done: Promise<RunRecord> }>();
  private closing = false;
  private readonly listeners: RunListener[];

  constructor(private readonly deps: RunnerDeps) {
    this.listeners = deps.listeners ?? [];
  }

  /** Starts a run and returns once it is recorded; `wait(run.id)` gives its end. */
  async start(request: RunRequest): Promise<StartedRun> {
    if (this.closing) {
      throw new TaskgateError('SHUTTING_DOWN', 'taskgate is shutting down and starts no new runs');
    }
    const { orm, registry } = this.deps;
    const task = registry.require(request.task);
    const params = validateParams(task, request.params);
    const key = request.idempotencyKey ?? null;
    const em = orm.em.fork();

    if (key) {
      const earlier = await findRunByIdempotencyKey(em, task.definition.name, key);
      if (earlier) return { run: earlier, replayed: true };
    }

    const lock = await TaskLock.tryAcquire(orm, task.definition.name);
    if (!lock) {
      if (key) {
        const earlier = await findRunByIdempotencyKey(em, task.definition.name, key);
        if (earlier) return { run: earlier, replayed: true };
      }
      const running = await findRunningRun(em, task.definition.name);
      throw new TaskgateError('TASK_BUSY', `${task.definition.name} is already running`, {
        runId: running?.id ?? null,
      });
    }

    let run: RunRecord | null;
    try {
      await this.abandon(em, task.definition.name);
      run = await insertRun(em, {
        task: task.definition.name,
        trigger: request.trigger,
        params,
        dryRun: request.dryRun ?? false,
        idempotencyKey: key,
      });
    } catch (error) {
      await lock.release();
      throw error;
    }
    if (!run) {
      // Another process finished a run with this key between our look-up and the lock.
      await lock.release();
      return { run: (await findRunByIdempotencyKey(em, task.definition.name, key!))!, replayed: true };
    }

    const abort = new AbortController();
    const done = this.execute(run, params, lock, abort, request.requestId).finally(() =>
      this.inflight.delete(run.id),
    );
    // A run started with `Prefer: respond-async` has nobody waiting: its failure to record is logged, not thrown.
    done.catch((error) =>
      this.deps.logger.error({ err: error, runId: run.id }, 'could not record the end of a run'),
    );
    this.inflight.set(run.id, { abort, done });
    return { run, replayed: false };
  }

  /** Starts a run and waits for its end. */
  async run(request: RunRequest): Promise<RunRecord> {
    const { run } = await this.start(request);
    return this.wait(run.id);
  }

  /**
   * The run once it has finished: at once for a run this process is running, otherwise by
   * looking at its record until it is no longer `running` (a run of another replica).
   */
  async wait(runId: string, signal?: AbortSignal): Promise<RunRecord> {
    const local = this.inflight.get(runId);
    if (local) return local.done;
    const em = this.deps.orm.em.fork();
    for (;;) {
      const run = await findRun(em, runId);
      if (!run) throw new TaskgateError('RUN_NOT_FOUND', `no run with id ${runId}`);
      if (run.status !== 'running') return run;
      signal?.throwIfAborted();
      await new Promise((resolve) => setTimeout(resolve, this.deps.pollMs ?? 500));
    }
  }

  /** Runs in progress in this process. */
  get activeCount(): number {
    return this.inflight.size;
  }

  /**
   * Finds runs left `running` by processes that died and marks them abandoned. A run whose lock
   * is free has no live process behind it; a run whose lock is held is left alone.
   */
  async sweepAbandoned(): Promise<string[]> {
    const em = this.deps.orm.em.fork();
    const abandoned: string[] = [];
    for (const task of await tasksWithRunningRows(em)) {
      const lock = await TaskLock.tryAcquire(this.deps.orm, task);
      if (!lock) continue;
      try {
        abandoned.push(...(await this.abandon(em, task)));
      } finally {
        await lock.release();
      }
    }
    return abandoned;
  }

  /**
   * Stops taking runs, lets running ones finish for up to `graceMs`, then aborts them (they are
   * recorded as interrupted) and waits for them to settle.
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    const settled = () => Promise.allSettled([...this.inflight.values()].map((run) => run.done));
    if (this.inflight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled(), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    if (this.inflight.size === 0) return;
    this.deps.logger.warn({ runIds: [...this.inflight.keys()] }, 'grace period over: interrupting runs');
    for (const run of this.inflight.values()) run.abort.abort(new Error('interrupted by shutdown'));
    await settled();
  }

  private async abandon(em: ReturnType<MikroORM['em']['fork']>, task: string): Promise<string[]> {
    const ids = await markAbandoned(em, task);
    if (ids.length > 0)
      this.deps.logger.warn({ task, runIds: ids }, 'marked runs left by a stopped process as abandoned');
    return ids;
  }

  private async execute(
    started: RunRecord,
    params: Record<string, unknown>,
    lock: TaskLock,
    abort: AbortController,
    requestId: string | undefined,
  ): Promise<RunRecord> {
    const { orm, registry, config } = this.deps;
    const definition = registry.require(started.task).definition;
    const timeoutMs = definition.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const timeout = setTimeout(() => abort.abort(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    const logger = this.deps.logger.child({
      task: started.task,
      runId: started.id,
      ...(requestId ? { requestId } : {}),
    });
    logger.info({ trigger: started.trigger, dryRun: started.dryRun, status: 'running' }, 'run started');
    await this.notify('onStart', started, logger);

    let outcome: Parameters<typeof finishRun>[2];
    try {
      const result = await definition.run({
        params,
        em: orm.em.fork(),
        logger,
        now: new Date(started.startedAt),
        signal: abort.signal,
        dryRun: started.dryRun,
        runId: started.id,
        config,
      });
      const json = JSON.parse(JSON.stringify(result ?? null));
      outcome = abort.signal.aborted
        ? { status: 'interrupted', result: json, error: reasonOf(abort.signal) }
        : { status: 'succeeded', result: json };
    } catch (error) {
      outcome = abort.signal.aborted
        ? { status: 'interrupted', error: reasonOf(abort.signal) }
        : { status: 'failed', error: (error as Error)?.message ?? String(error) };
      if (!abort.signal.aborted) logger.error({ err: error }, 'task failed');
    } finally {
      clearTimeout(timeout);
    }

    let finished: RunRecord;
    try {
      finished = await finishRun(orm.em.fork(), started.id, outcome);
    } finally {
      await lock.release().catch((error) => logger.error({ err: error }, 'could not release the task lock'));
    }
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

/** The params with defaults applied, or INVALID_PARAMS naming each bad field and listing the valid keys. */
function validateParams(task: RegisteredTask, raw: unknown): Record<string, unknown> {
  const parsed = task.params.safeParse(raw ?? {});
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const errors = parsed.error.issues.map((issue) => ({
    field: [...issue.path, ...('keys' in issue ? [issue.keys.join(',')] : [])].join('.') || null,
    message: issue.message,
  }));
  const listed = errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join('; ');
  throw new TaskgateError('INVALID_PARAMS', `invalid params for ${task.definition.name}: ${listed}`, {
    errors,
    validKeys: Object.keys(task.params.shape),
  });
}

function reasonOf(signal: AbortSignal): string {
  const reason = signal.reason as Error | undefined;
  return reason?.message ?? 'interrupted';
}
