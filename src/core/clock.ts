import type { Db } from '../db/sql.js';
import { isTaskgateError } from '../errors.js';
import type { Logger } from '../logger.js';
import { defaultGraceMs } from './overdue.js';
import type { RegisteredTask, Registry } from './registry.js';
import type { Runner } from './runner.js';
import { databaseNow, earlyWindowMs, slotCovered } from './slots.js';

/**
 * `serve`'s own scheduler, and its catch-up.
 *
 * The clock keeps one timer per scheduled task, set to its next slot: nothing is polled and no
 * statement is sent while nothing is due. When a timer fires, the task is started as a scheduled
 * fire by `clock`; every replica fires, and the slot identity (src/core/slots.ts) makes one run
 * of it, so no leader is elected. A timer that fires late (the process was suspended, the event
 * loop was busy) still fires for its slot, or for the latest one.
 *
 * Catch-up: when `serve` starts, and when it finds it was suspended (its wall clock ran on while
 * its monotonic clock did not), each task whose latest slot within its catch-up window has no
 * successful run runs that slot once. Never more than the latest slot per task: no storm after
 * a long sleep. A task opts out with `catchUp: 'none'`.
 */

/** setTimeout's longest delay; longer waits are chained. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** A wall-clock jump beyond the monotonic clock longer than this means the process was suspended. */
const SUSPEND_GAP_MS = 30_000;
/** A fire refused because the database was away is tried again after these pauses. */
const RETRY_MS = [5_000, 15_000, 45_000];

export interface ClockDeps {
  runner: Runner;
  registry: Registry;
  db: Db;
  logger: Logger;
}

export class InternalClock {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;
  private lastWall = Date.now();
  private lastMonotonic = performance.now();
  private catchingUp: Promise<void> | null = null;

  constructor(
    private readonly deps: ClockDeps,
    private readonly options: { fire: boolean; now?: () => Date } = { fire: true },
  ) {}

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /** Arms a timer per scheduled task (when firing is on) and runs the start-up catch-up. */
  start(): Promise<void> {
    if (this.options.fire) for (const task of this.scheduled()) this.arm(task);
    return this.catchUp();
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /**
   * Told of every request: when the process was suspended since the last one (a host that
   * sleeps and is woken by a request), catch up. Two clock readings and a subtraction otherwise.
   */
  noteActivity(): void {
    const wall = Date.now();
    const monotonic = performance.now();
    const suspended = wall - this.lastWall - (monotonic - this.lastMonotonic) > SUSPEND_GAP_MS;
    this.lastWall = wall;
    this.lastMonotonic = monotonic;
    if (suspended && !this.stopped) {
      this.deps.logger.info('the process was suspended: catching up on missed slots');
      void this.catchUp();
    }
  }

  private scheduled(): RegisteredTask[] {
    return this.deps.registry.list().filter((task) => task.schedule);
  }

  private arm(task: RegisteredTask): void {
    if (this.stopped) return;
    const name = task.definition.name;
    const next = task.schedule!.next(this.now());
    if (!next) return;
    const delay = Math.max(0, next.getTime() - this.now().getTime());
    const timer = setTimeout(
      () => (delay > MAX_TIMER_MS ? this.arm(task) : this.fire(task)),
      Math.min(delay, MAX_TIMER_MS),
    );
    timer.unref();
    this.timers.set(name, timer);
  }

  private async fire(task: RegisteredTask, attempt = 0): Promise<void> {
    if (this.stopped) return;
    const name = task.definition.name;
    if (attempt === 0) this.arm(task);
    try {
      const { run, replayed } = await this.deps.runner.start({ task: name, trigger: 'clock', scheduled: {} });
      if (!replayed)
        this.deps.logger.debug({ task: name, runId: run.id, slot: run.slot }, 'clock fired a slot');
    } catch (error) {
      const code = isTaskgateError(error) ? error.code : null;
      if (code === 'DATABASE_UNAVAILABLE' && attempt < RETRY_MS.length) {
        const retry = setTimeout(() => void this.fire(task, attempt + 1), RETRY_MS[attempt]);
        retry.unref();
        return;
      }
      if (code === 'SHUTTING_DOWN') return;
      // Busy (the previous slot's run is still going) or paused: the slot is not run.
      const level = code === 'TASK_BUSY' || code === 'TASK_PAUSED' ? 'info' : 'warn';
      this.deps.logger[level]({ task: name, err: error }, 'the clock could not start a slot');
    }
  }

  /** Runs the latest slot of each task that missed it, once (see above). */
  catchUp(): Promise<void> {
    this.catchingUp ??= this.catchUpNow().finally(() => {
      this.catchingUp = null;
    });
    return this.catchingUp;
  }

  private async catchUpNow(): Promise<void> {
    const tasks = this.scheduled().filter((task) => (task.definition.catchUp ?? 'latest') === 'latest');
    if (tasks.length === 0) return;
    let now: Date;
    try {
      now = await databaseNow(this.deps.db);
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'could not catch up: the database did not answer');
      return;
    }
    for (const task of tasks) {
      if (this.stopped) return;
      const schedule = task.schedule!;
      const name = task.definition.name;
      const slot = schedule.previous(now);
      if (!slot) continue;
      const window =
        task.definition.catchUpWindowMs ?? task.definition.graceMs ?? defaultGraceMs(schedule, slot);
      if (now.getTime() - slot.getTime() > window) continue;
      try {
        if (await slotCovered(this.deps.db, name, slot, earlyWindowMs(schedule, slot))) continue;
        const { run, replayed } = await this.deps.runner.start({
          task: name,
          trigger: 'catch-up',
          scheduled: { slot },
        });
        if (!replayed) {
          this.deps.logger.info(
            { task: name, slot: slot.toISOString(), runId: run.id },
            'caught up a missed slot',
          );
        }
      } catch (error) {
        this.deps.logger.warn(
          { task: name, slot: slot.toISOString(), err: error },
          'could not catch up a slot',
        );
      }
    }
  }
}
