import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { entities, TASKGATE_SCHEMA } from './entities.js';
import { migrationsList } from './migrations/index.js';

export type { MikroORM };

/** MikroORM options for a database URL: shared by the service, the CLI and the MikroORM CLI config. */
export function ormOptions(clientUrl: string, overrides: Partial<Options> = {}): Options {
  return {
    clientUrl,
    entities,
    extensions: [Migrator],
    discovery: { warnWhenNoEntities: false },
    // Connection problems surface within seconds instead of knex's one-minute default.
    pool: { min: 0, max: 10, acquireTimeoutMillis: 10_000, idleTimeoutMillis: 30_000 },
    driverOptions: {
      connection: { connectionTimeoutMillis: 5_000 },
      // knex prints dropped connections to the console; /readyz and the runs report them instead.
      log: { warn: () => undefined },
    },
    migrations: {
      tableName: `${TASKGATE_SCHEMA}.mikro_orm_migrations`,
      migrationsList,
      transactional: true,
      allOrNothing: true,
      snapshot: false,
    },
    debug: false,
    // The migrator reports each migration; taskgate logs the list itself.
    logger: () => undefined,
    ...overrides,
  };
}

export async function initORM(clientUrl: string, overrides: Partial<Options> = {}): Promise<MikroORM> {
  return MikroORM.init(ormOptions(clientUrl, overrides));
}

/**
 * Applies every pending migration; returns the names applied. Replicas starting together take
 * turns: a session advisory lock on a connection of its own is held around the migrator.
 */
export async function migrate(orm: MikroORM): Promise<string[]> {
  const client = orm.em.getConnection().getKnex().client;
  const connection = await client.acquireConnection();
  try {
    await connection.query(`select pg_advisory_lock(hashtextextended('taskgate:migrate', 0))`);
    const applied = await orm.getMigrator().up();
    return applied.map((m) => m.name);
  } finally {
    await connection
      .query(`select pg_advisory_unlock(hashtextextended('taskgate:migrate', 0))`)
      .catch(() => undefined);
    await client.releaseConnection(connection);
  }
}
