import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config.js';
import { loadRegistry, type Registry } from '../../src/core/registry.js';
import { type RunListener, Runner } from '../../src/core/runner.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { TEST_SECRET } from './secrets.js';

export { captureLogger } from './logs.js';
export { TEST_SECRET };

import type { TestDatabase } from './database.js';

export const RUNNER_TASKS = fileURLToPath(new URL('../fixtures/tasks-runner/', import.meta.url));

export function testConfig(db: TestDatabase, extra: Record<string, string> = {}) {
  return loadConfig({ NODE_ENV: 'test', DATABASE_URL: db.url, CRON_SECRET_KEY: TEST_SECRET, ...extra });
}

export async function testRunner(
  db: TestDatabase,
  options: {
    /** Another pool on the same database: another replica. */
    sql?: TestDatabase['sql'];
    registry?: Registry;
    logger?: Logger;
    listeners?: RunListener[];
    /** What the environment would say besides the database and the secret (RUN_LEASE_MS, ...). */
    env?: Record<string, string>;
  } = {},
): Promise<Runner> {
  return new Runner({
    db: options.sql ?? db.sql,
    orm: () => db.orm,
    registry: options.registry ?? (await loadRegistry(RUNNER_TASKS)),
    logger: options.logger ?? createLogger({ level: 'silent', pretty: false }),
    config: testConfig(db, options.env),
    listeners: options.listeners,
    pollMs: 20,
  });
}
