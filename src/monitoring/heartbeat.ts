import pRetry from 'p-retry';
import type { RunListener } from '../core/runner.js';
import type { RunRecord } from '../core/runs.js';
import type { Logger } from '../logger.js';
import { deliver } from '../outbound.js';

/**
 * Heartbeats to an outside dead-man's switch (Healthchecks.io and compatible monitors): a task's
 * ping URL gets `/start` when a run starts, the bare URL when it succeeds and `/fail` when it does
 * not. A host that is asleep or dead cannot raise its own alarm; the monitor raises it when the
 * expected ping does not come. `rid` pairs a start with its end, so the monitor shows durations.
 *
 * A run an operator cancelled is neither the job done nor the job failing: it gets `/log`, which
 * the monitor records without changing the check's state. Its work did not happen, so nothing
 * tells the monitor it did: unless another run succeeds, the check goes down after its grace time.
 */
export type Beat = 'start' | 'success' | 'fail' | 'log';

const SUFFIX: Record<Beat, string> = { start: '/start', success: '', fail: '/fail', log: '/log' };

/** The beat that ends a run. */
function endBeat(run: RunRecord): Beat {
  if (run.status === 'succeeded') return 'success';
  return run.status === 'cancelled' ? 'log' : 'fail';
}

/** The URL to ping for one beat of one run. */
export function pingUrl(base: string, beat: Beat, runId: string): string {
  const url = new URL(base);
  url.pathname = url.pathname.replace(/\/+$/, '') + SUFFIX[beat];
  url.searchParams.set('rid', runId);
  return url.toString();
}

export interface HeartbeatOptions {
  /** Ping URLs by task name. */
  urls: Record<string, string>;
  logger: Logger;
  timeoutMs?: number;
  attempts?: number;
  retryDelayMs?: number;
}

export class Heartbeats {
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly options: HeartbeatOptions) {}

  /** Heartbeat URLs naming no registered task: most likely a typo in the variable's name. */
  unknownTasks(names: string[]): string[] {
    return Object.keys(this.options.urls).filter((task) => !names.includes(task));
  }

  /** Give this to the runner. Pings go out in the background: a slow monitor never delays a run. */
  readonly runListener: RunListener = {
    onStart: (run) => this.beat(run, 'start'),
    onFinish: (run) => this.beat(run, endBeat(run)),
  };

  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private beat(run: RunRecord, beat: Beat): void {
    const base = this.options.urls[run.task];
    // A dry run proves nothing about the real job, so it must not keep the switch from firing.
    if (!base || run.dryRun) return;
    const done = this.ping(pingUrl(base, beat, run.id), run, beat).finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  /** A few tries, each bounded; the URL is a credential and is never logged. */
  private async ping(url: string, run: RunRecord, beat: Beat): Promise<void> {
    const body = {
      task: run.task,
      runId: run.id,
      status: run.status,
      durationMs: run.durationMs,
      ...(run.error ? { error: run.error } : {}),
    };
    try {
      await pRetry(
        async () => {
          const problem = await deliver(url, body, this.options.timeoutMs ?? 10_000);
          if (problem) throw new Error(problem);
        },
        {
          retries: (this.options.attempts ?? 3) - 1,
          minTimeout: this.options.retryDelayMs ?? 1_000,
          factor: 1,
        },
      );
    } catch (error) {
      this.options.logger.warn(
        { task: run.task, runId: run.id, beat, error: (error as Error).message },
        'heartbeat not delivered',
      );
    }
  }
}
