import { fileURLToPath } from 'node:url';
import { type Config, loadConfig } from '../../src/config.js';
import { taskCatalog } from '../../src/core/catalog.js';
import { loadRegistry, type Registry } from '../../src/core/registry.js';
import { Runner } from '../../src/core/runner.js';
import type { Db } from '../../src/db/sql.js';
import { createApp } from '../../src/http/app.js';
import { Refusals } from '../../src/http/refusals.js';
import { createLogger } from '../../src/logger.js';
import { Metrics } from '../../src/monitoring/metrics.js';

/** The throw-away tasks the HTTP tests trigger. */
export const HTTP_TASKS_DIR = fileURLToPath(new URL('../fixtures/tasks-http/', import.meta.url));

import { LogCapture } from './logs.js';
import { TEST_SECRET } from './secrets.js';

export { PREVIOUS_SECRET, TEST_SECRET as SECRET } from './secrets.js';

export interface TestApp {
  callback: ReturnType<ReturnType<typeof createApp>['callback']>;
  config: Config;
  registry: Registry;
  runner: Runner;
  metrics: Metrics;
  logs: LogCapture;
  /** The refusals the gate answered; `flush()` logs their sums now instead of at the window's end. */
  refusals: Refusals;
  close(): Promise<void>;
}

/**
 * The real app on a test database and the fixture tasks, with its log lines captured. `env` is
 * what the environment would say (CRON_SECRET_KEY defaults to SECRET).
 */
export async function buildApp(
  db: Db,
  env: Record<string, string | undefined> = {},
  options: { tasksDir?: string } = {},
): Promise<TestApp> {
  const config = loadConfig({ NODE_ENV: 'test', CRON_SECRET_KEY: TEST_SECRET, ...env });
  const logs = new LogCapture();
  const logger = createLogger({ level: 'trace', pretty: false, destination: logs });
  const registry = await loadRegistry(options.tasksDir ?? HTTP_TASKS_DIR);
  // Tests read back what they have just written: no caching here (it has a test of its own).
  const metrics = new Metrics({ tasksCacheMs: 0, tasks: () => taskCatalog(registry, db, new Date()) });
  const runner = new Runner({ db, registry, logger, config, listeners: [metrics.runListener], pollMs: 50 });
  const refusals = new Refusals(logger, metrics);
  const app = createApp({ db, logger, config, registry, runner, metrics, refusals });
  return {
    callback: app.callback(),
    config,
    registry,
    runner,
    metrics,
    logs,
    refusals,
    close: () => runner.close(0),
  };
}
