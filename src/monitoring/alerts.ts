import { type TaskInfo, taskCatalog } from '../core/catalog.js';
import type { Registry } from '../core/registry.js';
import type { RunListener } from '../core/runner.js';
import type { RunRecord } from '../core/runs.js';
import type { SqlClient } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { deliver } from '../outbound.js';
import { claimUnsent, type Incident, openIncident, releaseIncident, resolveIncidents } from './incidents.js';

export interface AlertPayload {
  /** Slack (and Mattermost, Rocket.Chat...) incoming webhooks show this. */
  text: string;
  event: 'task.failed' | 'task.overdue' | 'task.recovered';
  task: string;
  incidentId: string;
  at: string;
  [field: string]: unknown;
}

function failedPayload(incident: Incident, at: Date): AlertPayload {
  const d = incident.details;
  return {
    text: `:rotating_light: taskgate: ${incident.task} ${d.status ?? 'failed'}: ${d.error ?? 'no reason recorded'} (run ${d.runId})`,
    event: 'task.failed',
    task: incident.task,
    incidentId: incident.id,
    at: at.toISOString(),
    ...d,
  };
}

function overduePayload(incident: Incident, at: Date): AlertPayload {
  const d = incident.details;
  const last = d.lastSuccessAt ? `last success ${d.lastSuccessAt}` : 'no success yet';
  return {
    text: `:alarm_clock: taskgate: ${incident.task} is overdue: a run was due at ${d.dueAt} (${d.scheduleText}); ${last}`,
    event: 'task.overdue',
    task: incident.task,
    incidentId: incident.id,
    at: at.toISOString(),
    ...d,
  };
}

function recoveredPayload(incident: Incident, at: Date, run: RunRecord | null): AlertPayload {
  const by = run ? `run ${run.id} succeeded` : 'no longer overdue';
  return {
    text: `:white_check_mark: taskgate: ${incident.task} recovered (${incident.kind}): ${by}`,
    event: 'task.recovered',
    task: incident.task,
    incidentId: incident.id,
    at: at.toISOString(),
    recovered: incident.kind,
    runId: run?.id ?? null,
  };
}

export interface AlertsOptions {
  webhookUrl: string;
  logger: Logger;
  db: SqlClient;
  registry: Registry;
  /** Per POST; a slow webhook never holds a run's answer (alerts are sent in the background). */
  timeoutMs?: number;
  now?: () => Date;
}

/**
 * Alerts: a JSON POST to ALERT_WEBHOOK_URL when a task fails or turns overdue, and again when it
 * recovers. Once per incident, whichever replica or restart notices it: incidents live in
 * `taskgate.incident`, where one open row per task and kind is all PostgreSQL allows.
 */
export class Alerts {
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;

  constructor(private readonly options: AlertsOptions) {}

  /**
   * Give this to the runner: a failed run opens an incident, a successful one resolves them. A run
   * an operator cancelled is no incident: someone already knows.
   */
  readonly runListener: RunListener = {
    onFinish: (run) => {
      if (run.dryRun || run.status === 'cancelled') return;
      this.track(run.status === 'succeeded' ? this.recovered(run) : this.failed(run));
    },
  };

  /** Looks for overdue tasks every `intervalMs` (and at once); also retries alerts that did not get through. */
  start(intervalMs: number): void {
    if (intervalMs <= 0) return;
    const tick = () => {
      this.checking ??= this.checkOverdue()
        .catch((error) => this.options.logger.error({ err: error }, 'overdue check failed'))
        .finally(() => (this.checking = null));
    };
    tick();
    this.timer = setInterval(tick, intervalMs);
    this.timer.unref();
  }

  /** Opens an incident for each task that turned overdue and alerts once; retries unsent alerts. */
  async checkOverdue(now: Date = this.now()): Promise<void> {
    const { db, registry } = this.options;
    const tasks = await taskCatalog(registry, db, now);
    for (const task of tasks) {
      // A paused task is neither raised nor resolved: its open incidents wait for it to run again.
      if (task.paused) continue;
      if (task.overdue) {
        const incident = await openIncident(db, task.name, 'overdue', overdueDetails(task));
        if (incident) await this.send(db, incident, overduePayload(incident, now));
      } else if (task.schedule) {
        // No longer overdue without a success in between: its schedule or grace changed.
        for (const incident of await resolveIncidents(db, task.name, 'overdue')) {
          if (incident.sentAt) await this.post(recoveredPayload(incident, now, null));
        }
      }
    }
    for (const incident of await claimUnsent(db)) {
      const payload =
        incident.kind === 'failed' ? failedPayload(incident, now) : overduePayload(incident, now);
      await this.send(db, incident, payload);
    }
  }

  /** Resolves once every alert started so far has been sent or has failed. */
  async settled(): Promise<void> {
    while (this.pending.size > 0 || this.checking) {
      await Promise.allSettled([...this.pending, this.checking]);
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.settled();
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private track(work: Promise<void>): void {
    const done = work
      .catch((error) => this.options.logger.error({ err: error }, 'alert bookkeeping failed'))
      .finally(() => this.pending.delete(done));
    this.pending.add(done);
  }

  private async failed(run: RunRecord): Promise<void> {
    const { db } = this.options;
    const details = { runId: run.id, status: run.status, error: run.error, startedAt: run.startedAt };
    const incident = await openIncident(db, run.task, 'failed', details);
    if (incident) await this.send(db, incident, failedPayload(incident, this.now()));
  }

  private async recovered(run: RunRecord): Promise<void> {
    for (const incident of await resolveIncidents(this.options.db, run.task)) {
      if (incident.sentAt) await this.post(recoveredPayload(incident, this.now(), run));
    }
  }

  private async send(db: SqlClient, incident: Incident, payload: AlertPayload): Promise<void> {
    if (!(await this.post(payload))) await releaseIncident(db, incident.id);
  }

  /** True when the webhook took it. The URL is a credential: it never reaches a log line. */
  private async post(payload: AlertPayload): Promise<boolean> {
    const fields = { task: payload.task, event: payload.event, incidentId: payload.incidentId };
    const problem = await deliver(this.options.webhookUrl, payload, this.options.timeoutMs ?? 10_000);
    if (problem) this.options.logger.warn({ ...fields, error: problem }, 'alert not delivered');
    else this.options.logger.info(fields, 'alert sent');
    return problem === null;
  }
}

function overdueDetails(task: TaskInfo): Record<string, unknown> {
  return {
    dueAt: task.dueAt,
    graceMs: task.graceMs,
    schedule: task.schedule,
    scheduleText: task.scheduleText,
    lastSuccessAt: task.lastSuccess?.startedAt ?? null,
    lastRunStatus: task.lastRun?.status ?? null,
  };
}
