import type { SchedulingConfig } from '../config.js';
import type { Registry } from '../core/registry.js';
import type { RunListener } from '../core/runner.js';
import type { SqlClient } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { Alerts } from './alerts.js';
import { Heartbeats } from './heartbeat.js';

/** Alerts and heartbeats as `serve` runs them: listeners for the runner, and the overdue checks. */
export interface Monitoring {
  listeners: RunListener[];
  alerts: Alerts | null;
  heartbeats: Heartbeats | null;
  /** Starts the periodic overdue checks. */
  start(): void;
  /** Stops the overdue checks and lets alerts and pings in flight finish. */
  close(): Promise<void>;
}

export function createMonitoring(
  config: SchedulingConfig,
  logger: Logger,
  { db, registry }: { db: SqlClient; registry: Registry },
): Monitoring {
  const alerts = config.alertWebhookUrl
    ? new Alerts({ webhookUrl: config.alertWebhookUrl, logger, db, registry })
    : null;
  const heartbeats =
    Object.keys(config.heartbeatUrls).length > 0
      ? new Heartbeats({ urls: config.heartbeatUrls, logger })
      : null;
  const unknown = heartbeats?.unknownTasks(registry.names()) ?? [];
  if (unknown.length > 0) {
    logger.warn(
      { variables: unknown.map((task) => `HEARTBEAT_URL_${task.toUpperCase()}`) },
      'heartbeat URLs for tasks that do not exist: check the variable names',
    );
  }
  return {
    listeners: [alerts?.runListener, heartbeats?.runListener].filter((l): l is RunListener => Boolean(l)),
    alerts,
    heartbeats,
    start() {
      alerts?.start(config.overdueCheckMs);
      logger.info(
        {
          alerts: Boolean(alerts),
          overdueCheckMs: alerts ? config.overdueCheckMs : null,
          heartbeats: Object.keys(config.heartbeatUrls),
        },
        'monitoring',
      );
    },
    async close() {
      await Promise.all([alerts?.close(), heartbeats?.settled()]);
    },
  };
}
