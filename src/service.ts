import path from 'node:path';
import type { Config } from './config.js';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './db/embedded.js';
import { LazyOrm } from './db/lazyOrm.js';
import { pendingMigrations } from './db/migrations/pending.js';
import { Db, isDatabaseUnavailable } from './db/sql.js';
import { TaskgateError } from './errors.js';
import type { Logger } from './logger.js';
import { loadRegistry, type Registry } from './registry.js';
import { type RunListener, Runner } from './runner.js';

/** Where `npm start` keeps the embedded PostgreSQL's data (git-ignored). */
export const EMBEDDED_DATA_DIR = path.resolve('.data/postgres');

export interface Database {
  /** MikroORM, loaded only when migrations are pending or a task reads `ctx.em`. */
  orm: LazyOrm;
  /** taskgate's own SQL: bounded waits, no connection held between uses (src/db/sql.ts). */
  db: Db;
  close(): Promise<void>;
}

/**
 * Connects to DATABASE_URL, or outside production starts (or joins) the embedded PostgreSQL,
 * then applies pending migrations. A database that cannot be reached (a failover, a host still
 * waking) is tried again with backoff for DATABASE_STARTUP_TIMEOUT_MS, each try logged.
 */
export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  let embedded: EmbeddedDatabase | undefined;
  let url = config.databaseUrl;
  if (!url) {
    const started = performance.now();
    embedded = await startEmbeddedDatabase({ dataDir: EMBEDDED_DATA_DIR, persistent: true });
    await embedded.createDatabase('taskgate');
    url = embedded.urlFor('taskgate');
    logger.info(
      {
        dataDir: path.relative(process.cwd(), EMBEDDED_DATA_DIR),
        ms: Math.round(performance.now() - started),
      },
      'DATABASE_URL is not set: using embedded PostgreSQL',
    );
  }
  const { database } = config;
  const db = new Db({
    url,
    max: database.poolMax,
    queryTimeoutMs: database.queryTimeoutMs,
    connectTimeoutMs: database.connectTimeoutMs,
  });
  const orm = new LazyOrm(url);
  try {
    await untilReachable(database.startupTimeoutMs, logger, async () => {
      // One query decides; the migrator, under its lock, decides again (src/db/orm.ts).
      if ((await pendingMigrations(db)).length === 0) return;
      const { migrate } = await import('./db/orm.js');
      const applied = await migrate(await orm.ready());
      if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');
    });
  } catch (error) {
    await db.close();
    await orm.close();
    await embedded?.stop();
    throw error;
  }
  return {
    orm,
    db,
    async close() {
      await db.close();
      await orm.close();
      await embedded?.stop();
    },
  };
}

/**
 * Runs `attempt` until it succeeds, retrying while the database is unreachable (backoff 0.5 s
 * doubling to 8 s) for at most `budgetMs`; then one error naming what was last seen.
 */
async function untilReachable(budgetMs: number, logger: Logger, attempt: () => Promise<void>): Promise<void> {
  const started = performance.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      const cause = ((error as Error).cause as Error | undefined) ?? (error as Error);
      const elapsed = performance.now() - started;
      const waitMs = Math.min(8_000, 500 * 2 ** (n - 1), Math.max(0, budgetMs - elapsed));
      if (elapsed >= budgetMs || waitMs <= 0) {
        throw new TaskgateError(
          'DATABASE_UNAVAILABLE',
          `the database could not be reached in ${Math.round(elapsed / 1000)} s (${n} tries; last: ${cause.message})`,
        );
      }
      logger.warn(
        { attempt: n, retryInMs: waitMs, error: cause.message },
        'database not reachable yet: retrying',
      );
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

export interface Services {
  config: Config;
  logger: Logger;
  orm: LazyOrm;
  db: Db;
  registry: Registry;
  runner: Runner;
  close(graceMs?: number): Promise<void>;
}

/** What run listeners may need, open before the runner is built. */
export interface Core {
  db: Db;
  registry: Registry;
}

/**
 * Wires the database, the task registry and the runner together: the core the HTTP face and CLI
 * share. Start-up in one order: the database and the tasks, then the run listeners made from
 * them (`listeners`), then the runner with its listeners.
 */
export async function openServices(
  config: Config,
  logger: Logger,
  options: { listeners?: (core: Core) => RunListener[]; tasksDir?: string } = {},
): Promise<Services> {
  // The tasks load while the database connects and its migrations are checked.
  const opening = openDatabase(config, logger);
  opening.catch(() => undefined); // awaited below; marked handled while the tasks load
  let registry: Registry;
  try {
    registry = await loadRegistry(options.tasksDir ?? config.tasksDir);
  } catch (error) {
    // A malformed task stops start-up at once; the database is closed once it has opened.
    opening.then((database) => database.close()).catch(() => undefined);
    throw error;
  }
  const database = await opening;
  const runner = new Runner({
    db: database.db,
    orm: () => database.orm.get(),
    registry,
    logger,
    config,
    listeners: options.listeners?.({ db: database.db, registry }),
  });
  return {
    config,
    logger,
    orm: database.orm,
    db: database.db,
    registry,
    runner,
    async close(graceMs = config.shutdownGraceMs) {
      await runner.close(graceMs);
      await database.close();
    },
  };
}
