import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TaskInfo } from '../core/catalog.js';
import type { RunListener } from '../core/runner.js';
import type { SlotReport } from '../core/slots.js';

/** Where the per-task gauges come from at scrape time: the catalog, read from the database. */
export type TaskSource = () => Promise<TaskInfo[]>;

export interface MetricsOptions {
  /** Process metrics (CPU, memory, event loop lag) as prom-client collects them. */
  processMetrics?: boolean;
  /** Reads the tasks' last runs at scrape time; without it the per-task gauges stay empty. */
  tasks?: TaskSource;
  /** Reads the tasks' latest slots at scrape time, for the missed-slots gauge. */
  slots?: () => Promise<Map<string, SlotReport[]>>;
  /**
   * How long one read of the tasks serves scrapes (default TASKS_CACHE_MS), so that scraping
   * often, or a flood of scrapes, costs the database one read per interval.
   */
  tasksCacheMs?: number;
}

/** The per-task gauges change when a run ends; a few seconds late is fine for an alert rule. */
export const TASKS_CACHE_MS = 5_000;

/**
 * taskgate's Prometheus metrics, in a registry of their own so that every app (and every test)
 * counts alone. Runs are counted as this process sees them finish; the last success and overdue
 * gauges are read from the database at scrape time, so they survive restarts and include runs
 * started by other replicas or the CLI.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly runs: Counter<'task' | 'status'>;
  readonly runDuration: Histogram<'task' | 'status'>;
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method'>;
  readonly slotFires: Counter<'task' | 'scheduler' | 'outcome'>;
  private readonly tasks: TaskSource | undefined;
  /** Label-bound children by `route method status`: prom-client hashes labels on every call otherwise. */
  private readonly requestSeries = new Map<
    string,
    { count: { inc(): void }; duration: { observe(v: number): void } }
  >();

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.tasks = options.tasks;
    this.runs = new Counter({
      name: 'taskgate_runs_total',
      help: 'Runs finished by this process, by task and final status.',
      labelNames: ['task', 'status'],
      registers,
    });
    this.runDuration = new Histogram({
      name: 'taskgate_run_duration_seconds',
      help: 'How long runs took, by task and final status.',
      labelNames: ['task', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'taskgate_http_requests_total',
      help: 'HTTP requests answered, by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'taskgate_http_request_duration_seconds',
      help: 'Time to answer HTTP requests, by route pattern and method.',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.slotFires = new Counter({
      name: 'taskgate_slot_fires_total',
      help: "Scheduled fires this process took, by task, scheduler and outcome: ran (started the slot's run) or duplicate (answered with it).",
      labelNames: ['task', 'scheduler', 'outcome'],
      registers,
    });
    const cacheMs = options.tasksCacheMs ?? TASKS_CACHE_MS;
    const slots = options.slots;
    let slotsRead: { at: number; value: Promise<Map<string, SlotReport[]> | null> } | null = null;
    if (slots) {
      new Gauge({
        name: 'taskgate_slots_missed',
        help: "Of each scheduled task's last 10 slots, how many no scheduler fired and catch-up did not run.",
        labelNames: ['task'],
        registers,
        async collect() {
          this.reset();
          if (!slotsRead || performance.now() - slotsRead.at >= cacheMs) {
            slotsRead = { at: performance.now(), value: slots().catch(() => null) };
          }
          for (const [task, reports] of (await slotsRead.value) ?? []) {
            this.set({ task }, reports.filter((r) => r.fate === 'missed').length);
          }
        },
      });
    }
    const source = () => this.tasks;
    let pending: Promise<TaskInfo[] | null> | null = null;
    let readAt = 0;
    // Both gauges, and every scrape within cacheMs, share one catalog read; a failed read is
    // not kept, so the next scrape tries again.
    const catalog = () => {
      if (pending && (cacheMs === 0 || performance.now() - readAt < cacheMs)) return pending;
      readAt = performance.now();
      const read: Promise<TaskInfo[] | null> = (source()?.() ?? Promise.resolve(null)).catch(() => {
        if (pending === read) pending = null;
        return null;
      });
      pending = read;
      if (cacheMs === 0) {
        setImmediate(() => {
          if (pending === read) pending = null;
        });
      }
      return read;
    };
    new Gauge({
      name: 'taskgate_last_success_timestamp_seconds',
      help: 'When the last successful (not dry) run of each task started, in Unix seconds.',
      labelNames: ['task'],
      registers,
      async collect() {
        this.reset();
        for (const task of (await catalog()) ?? []) {
          if (task.lastSuccess) this.set({ task: task.name }, Date.parse(task.lastSuccess.startedAt) / 1000);
        }
      },
    });
    new Gauge({
      name: 'taskgate_task_overdue',
      help: '1 when a scheduled task has missed its expected run, else 0.',
      labelNames: ['task'],
      registers,
      async collect() {
        this.reset();
        for (const task of (await catalog()) ?? []) {
          const overdue = (task as TaskInfo & { overdue?: unknown }).overdue;
          if (typeof overdue === 'boolean') this.set({ task: task.name }, overdue ? 1 : 0);
        }
      },
    });
    new Gauge({
      name: 'taskgate_task_paused',
      help: '1 while an operator has paused the task (no run of it starts), else 0.',
      labelNames: ['task'],
      registers,
      async collect() {
        this.reset();
        for (const task of (await catalog()) ?? []) {
          const paused = (task as TaskInfo & { paused?: unknown }).paused;
          if (typeof paused === 'boolean') this.set({ task: task.name }, paused ? 1 : 0);
        }
      },
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'taskgate_' });
  }

  /** Give this to the runner: it counts runs and their durations as they finish, and slot fires. */
  readonly runListener: RunListener = {
    onScheduledFire: (fire) => {
      this.slotFires.inc({
        task: fire.task,
        scheduler: fire.scheduler,
        outcome: fire.duplicate ? 'duplicate' : 'ran',
      });
    },
    onFinish: (run) => {
      this.runs.inc({ task: run.task, status: run.status });
      if (run.durationMs !== null) {
        this.runDuration.observe({ task: run.task, status: run.status }, run.durationMs / 1000);
      }
    },
  };

  /** Counts one answered HTTP request. `route` is the route pattern, never the raw path. */
  observeRequest(route: string, method: string, status: number, seconds: number): void {
    const key = `${route} ${method} ${status}`;
    let series = this.requestSeries.get(key);
    if (!series) {
      series = {
        count: this.httpRequests.labels(route, method, String(status)),
        duration: this.httpDuration.labels(route, method),
      };
      this.requestSeries.set(key, series);
    }
    series.count.inc();
    series.duration.observe(seconds);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
