import path from 'node:path';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Config } from './config.js';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './db/embedded.js';
import { initORM, migrate } from './db/orm.js';
import type { Logger } from './logger.js';
import { loadRegistry, type Registry } from './registry.js';
import { type RunListener, Runner } from './runner.js';

/** Where `npm start` keeps the embedded PostgreSQL's data (git-ignored). */
export const EMBEDDED_DATA_DIR = path.resolve('.data/postgres');

export interface Database {
  orm: MikroORM;
  close(): Promise<void>;
}

/**
 * Connects to DATABASE_URL, or outside production starts (or joins) the embedded PostgreSQL,
 * then applies pending migrations.
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
  let orm: MikroORM;
  try {
    orm = await initORM(url);
    const applied = await migrate(orm);
    if (applied.length > 0) logger.info({ migrations: applied }, 'applied migrations');
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
  return {
    orm,
    async close() {
      await orm.close(true);
      await embedded?.stop();
    },
  };
}

export interface Services {
  config: Config;
  logger: Logger;
  orm: MikroORM;
  registry: Registry;
  runner: Runner;
  close(graceMs?: number): Promise<void>;
}

/** Wires the database, the task registry and the runner together: the core the HTTP face and CLI share. */
export async function openServices(
  config: Config,
  logger: Logger,
  options: { listeners?: RunListener[]; tasksDir?: string } = {},
): Promise<Services> {
  const registry = await loadRegistry(options.tasksDir ?? config.tasksDir);
  const database = await openDatabase(config, logger);
  const runner = new Runner({ orm: database.orm, registry, logger, config, listeners: options.listeners });
  return {
    config,
    logger,
    orm: database.orm,
    registry,
    runner,
    async close(graceMs = config.shutdownGraceMs) {
      await runner.close(graceMs);
      await database.close();
    },
  };
}
