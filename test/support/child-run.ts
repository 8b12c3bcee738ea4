// Starts a long run of the `sleeper` fixture task in this process and prints its run id, so a
// test can kill the process with SIGKILL in the middle of the run.

import { loadConfig } from '../../src/config.js';
import { loadRegistry } from '../../src/core/registry.js';
import { Runner } from '../../src/core/runner.js';
import { Db } from '../../src/db/sql.js';
import { createLogger } from '../../src/logger.js';
import { RUNNER_TASKS } from './runner.js';

const config = loadConfig(process.env);
const db = new Db({ url: config.databaseUrl!, max: 2, queryTimeoutMs: 5_000, connectTimeoutMs: 5_000 });
const runner = new Runner({
  db,
  registry: await loadRegistry(RUNNER_TASKS),
  logger: createLogger({ level: 'silent', pretty: false }),
  config,
});
const { run } = await runner.start({ task: 'sleeper', params: { ms: 120_000 }, trigger: 'cli' });
process.stdout.write(`${run.id}\n`);
await runner.wait(run.id);
