import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { taskCatalog } from '../src/catalog.js';
import { type Config, loadConfig } from '../src/config.js';
import type { Db } from '../src/db/sql.js';
import { createApp } from '../src/http/app.js';
import { createLogger } from '../src/logger.js';
import { Metrics } from '../src/metrics.js';
import { loadRegistry, type Registry } from '../src/registry.js';
import { Runner } from '../src/runner.js';

/** The throw-away tasks the HTTP tests trigger. */
export const HTTP_TASKS_DIR = fileURLToPath(new URL('./fixtures/tasks-http/', import.meta.url));

export const SECRET = 'http-test-secret-0123456789abcdefghijklmnop';
export const PREVIOUS_SECRET = 'http-test-previous-secret-9876543210zyxwvu';

/** Every line a logger wrote, kept so that tests can read them as JSON. */
export class LogCapture extends Writable {
  readonly chunks: string[] = [];

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.chunks.push(chunk.toString('utf8'));
    done();
  }

  get text(): string {
    return this.chunks.join('');
  }

  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  }
}

export interface TestApp {
  callback: ReturnType<ReturnType<typeof createApp>['callback']>;
  config: Config;
  registry: Registry;
  runner: Runner;
  metrics: Metrics;
  logs: LogCapture;
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
  const config = loadConfig({ NODE_ENV: 'test', CRON_SECRET_KEY: SECRET, ...env });
  const logs = new LogCapture();
  const logger = createLogger({ level: 'trace', pretty: false, destination: logs });
  const registry = await loadRegistry(options.tasksDir ?? HTTP_TASKS_DIR);
  // Tests read back what they have just written: no caching here (it has a test of its own).
  const metrics = new Metrics({ tasksCacheMs: 0, tasks: () => taskCatalog(registry, db, new Date()) });
  const runner = new Runner({ db, registry, logger, config, listeners: [metrics.runListener], pollMs: 50 });
  const app = createApp({ db, logger, config, registry, runner, metrics });
  return {
    callback: app.callback(),
    config,
    registry,
    runner,
    metrics,
    logs,
    close: () => runner.close(0),
  };
}
