import path from 'node:path';
import pRetry from 'p-retry';
import type { Config } from './config.js';
import { loadConfiguredTasks, type Registry } from './core/registry.js';
import { type RunListener, Runner } from './core/runner.js';
import { describeDatabase, permanentConnectionError } from './db/connect.js';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './db/embedded.js';
import { LazyOrm } from './db/lazyOrm.js';
import { pendingMigrations } from './db/migrations/pending.js';
import { Db, isDatabaseUnavailable } from './db/sql.js';
import { TaskgateError } from './errors.js';
import type { Logger } from './logger.js';

/** Where `npm start` keeps the embedded PostgreSQL's data (git-ignored). */
export const EMBEDDED_DATA_DIR = path.resolve('.data/postgres');

export interface Database {
  /** MikroORM, loaded only when migrations are pending or a task reads `ctx.em`. */
  orm: LazyOrm;
  /** taskgate's own SQL: bounded waits, no connection held between uses (src/db/sql.ts). */
  db: Db;
  /** The URL it was opened with (the embedded one's when DATABASE_URL is unset). */
  url: string;
  /** The embedded development database: taskgate's own. */
  embedded: boolean;
  /** The migrations this opening applied (none when the schema was up to date already). */
  applied: string[];
  close(): Promise<void>;
}

/**
 * The embedded database is taskgate's own: it gets the tables its tasks work on (each task's
 * `prepareDevDatabase`), which on a DATABASE_URL the application makes itself. Nothing elsewhere.
 */
async function prepareDevTables(
  database: Pick<Database, 'db' | 'embedded'>,
  registry: Registry,
): Promise<void> {
  if (!database.embedded) return;
  for (const task of registry.list()) await task.definition.prepareDevDatabase?.(database.db);
}

export interface OpenOptions {
  /**
   * `serve` and `migrate`: apply pending migrations. Every other command finds taskgate's schema
   * as it is and writes nothing to it; a schema not yet migrated is an error naming the fix.
   */
  migrate?: boolean;
  /** `doctor`: open the database even when the schema is not migrated, to report on it. */
  inspect?: boolean;
  /** The tasks whose tables the embedded development database gets (prepareDevDatabase). */
  registry?: Registry;
  /**
   * `serve`'s stop during start-up: the retries end at once and what was opened is closed, a
   * connection still being opened is not waited for (the process is about to exit), and a
   * migration in flight is rolled back by PostgreSQL (they run in one transaction, src/db/orm.ts).
   */
  signal?: AbortSignal;
}

/**
 * Connects to DATABASE_URL, or outside production starts (or joins) the embedded PostgreSQL. The
 * embedded database is taskgate's own: it is created, migrated and given the tasks' tables. A
 * DATABASE_URL's database is never created, and migrated only when `migrate` is asked. A
 * database that cannot be reached (a failover, a host still waking) is tried again with backoff
 * for DATABASE_STARTUP_TIMEOUT_MS, each try logged; one that does not exist or refuses the role
 * is not (no retry changes that).
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  options: OpenOptions = {},
): Promise<Database> {
  options.signal?.throwIfAborted();
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
  const { signal } = options;
  const applied: string[] = [];
  try {
    const target = url;
    await untilReachable(database.startupTimeoutMs, logger, signal, async () => {
      await db.query('select 1').catch((error: unknown) => {
        throw permanentConnectionError(error, target) ?? error;
      });
      if (!embedded && !options.migrate) return;
      // One query decides; the migrator, under its lock, decides again (src/db/orm.ts).
      if ((await pendingMigrations(db)).length === 0) return;
      const { migrate } = await import('./db/orm.js');
      applied.push(...(await migrate(await orm.ready())));
      if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');
    });
    if (!embedded && !options.migrate && !options.inspect) {
      const pending = await pendingMigrations(db);
      if (pending.length > 0) {
        throw new TaskgateError(
          'CONFIG_INVALID',
          `taskgate's schema in database ${describeDatabase(url)} is not migrated (${pending.length} pending): ` +
            'run `taskgate migrate` (`taskgate serve` migrates at start)',
          { pending },
        );
      }
    }
    if (options.registry) await prepareDevTables({ db, embedded: Boolean(embedded) }, options.registry);
  } catch (error) {
    const closing = Promise.all([db.close(), orm.close()]);
    if (signal?.aborted) closing.catch(() => undefined);
    else await closing;
    await embedded?.stop();
    throw error;
  }
  return {
    orm,
    db,
    url,
    embedded: Boolean(embedded),
    applied,
    async close() {
      await db.close();
      await orm.close();
      await embedded?.stop();
    },
  };
}

/**
 * Runs `attempt` until it succeeds, retrying while the database is unreachable (backoff 0.5 s
 * doubling to 8 s) for at most `budgetMs`; then one error naming what was last seen. Once
 * `signal` is aborted, rejects with its reason at once, abandoning the attempt in flight.
 */
async function untilReachable(
  budgetMs: number,
  logger: Logger,
  signal: AbortSignal | undefined,
  attempt: () => Promise<void>,
): Promise<void> {
  const started = performance.now();
  const causeOf = (error: Error) => (error.cause as Error | undefined) ?? error;
  let tries = 0;
  try {
    await pRetry(
      () => {
        tries++;
        return unlessAborted(attempt(), signal);
      },
      {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 500,
        factor: 2,
        maxTimeout: 8_000,
        maxRetryTime: budgetMs,
        signal,
        // Called only when a retry follows (p-retry checks the budget first).
        shouldRetry: ({ error, retriesConsumed }) => {
          if (!isDatabaseUnavailable(error)) return false;
          const left = budgetMs - (performance.now() - started);
          const retryInMs = Math.round(Math.min(8_000, 500 * 2 ** retriesConsumed, left));
          logger.warn(
            { attempt: tries, retryInMs, error: causeOf(error).message },
            'database not reachable yet: retrying',
          );
          return true;
        },
      },
    );
  } catch (error) {
    signal?.throwIfAborted();
    if (!isDatabaseUnavailable(error)) throw error;
    const elapsed = performance.now() - started;
    throw new TaskgateError(
      'DATABASE_UNAVAILABLE',
      `the database could not be reached in ${Math.round(elapsed / 1000)} s (${tries} tries; last: ${causeOf(error as Error).message})`,
    );
  }
}

/** What `work` settles to, or the signal's reason as soon as it is aborted (`work` is then left to end unheeded). */
function unlessAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  work.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
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
  options: {
    listeners?: (core: Core) => RunListener[];
    migrate?: boolean;
    /** Aborted: the start-up ends at once (OpenOptions.signal). */
    signal?: AbortSignal;
  } = {},
): Promise<Services> {
  // The tasks load while the database connects and its migrations are checked.
  const opening = openDatabase(config, logger, { migrate: options.migrate, signal: options.signal });
  opening.catch(() => undefined); // awaited below; marked handled while the tasks load
  let registry: Registry;
  try {
    registry = await loadConfiguredTasks(config);
  } catch (error) {
    // A malformed task stops start-up at once; the database is closed once it has opened.
    opening.then((database) => database.close()).catch(() => undefined);
    throw error;
  }
  const database = await opening;
  await prepareDevTables(database, registry);
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
