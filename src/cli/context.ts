import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { type Config, loadConfig } from '../config.js';
import { createLogger, type Logger } from '../logger.js';
import type { Services } from '../service.js';

/** Reads `.env` from the working folder when there is one; the environment wins over it. */
function loadDotEnv(file = '.env'): void {
  if (existsSync(file)) process.loadEnvFile(file);
}

export interface Bootstrap {
  config: Config;
  logger: Logger;
}

/**
 * The CLI's composition root: the environment is read here, once, through loadConfig. Logs go to
 * stderr so that stdout carries only the command's answer (`--json` stays parseable).
 */
export function bootstrap(
  options: { serve?: boolean; database?: boolean; doctor?: boolean } = {},
): Bootstrap {
  loadDotEnv();
  const config = loadConfig(process.env, {
    credentials: options.doctor ? 'report' : 'refuse',
    defaultLogLevel: options.serve ? 'info' : 'warn',
    generateSecret: options.serve ? () => randomBytes(32).toString('hex') : undefined,
    // Only `serve` checks callers' secrets; the other commands never use one.
    requireSecret: options.serve === true,
    // `build` and `workflow` work on files alone.
    requireDatabase: options.database !== false,
  });
  const pretty =
    config.env !== 'production' && (options.serve ? process.stdout : process.stderr).isTTY === true;
  const logger = createLogger({ level: config.logLevel, pretty, destination: options.serve ? 1 : 2 });
  return { config, logger };
}

/**
 * Runs `fn` with the database, registry and runner open, and closes them after. The schema is
 * migrated only with `migrate` (the commands that record runs: `run`); the read-only commands
 * write nothing to it. With `monitor`, runs started by `fn`
 * send the alerts and heartbeats `serve` sends for them (the same listeners), and the command
 * waits for those in flight before it exits; the periodic overdue check stays `serve`'s job.
 */
export async function withServices<T>(
  fn: (services: Services) => Promise<T>,
  options: { monitor?: boolean; migrate?: boolean } = {},
): Promise<T> {
  const { config, logger } = bootstrap();
  // Loaded here, not on import: `trigger`, `list` and `workflow` never open a database.
  const { openServices } = await import('../service.js');
  const watched =
    options.monitor &&
    (config.scheduling.alertWebhookUrl || Object.keys(config.scheduling.heartbeatUrls).length > 0);
  const { createMonitoring } = watched
    ? await import('../monitoring/monitoring.js')
    : { createMonitoring: null };
  let monitoring: { close(): Promise<void> } | undefined;
  const services = await openServices(config, logger, {
    migrate: options.migrate,
    listeners: createMonitoring
      ? (core) => {
          const made = createMonitoring(config.scheduling, logger, core);
          monitoring = made;
          return made.listeners;
        }
      : undefined,
  });
  try {
    return await fn(services);
  } finally {
    await monitoring?.close();
    await services.close();
  }
}
