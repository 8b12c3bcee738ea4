import { Migrator } from '@mikro-orm/migrations';
import { MikroORM, type Options } from '@mikro-orm/postgresql';
import { migrationsList } from './migrations/index.js';

export type { MikroORM };

/** taskgate keeps its own tables, and MikroORM's migrations table, in this schema, apart from the application's. */
const TASKGATE_SCHEMA = 'taskgate';

/** MikroORM options for a database URL: shared by the service, the CLI and the MikroORM CLI config. */
export function ormOptions(clientUrl: string, overrides: Partial<Options> = {}): Options {
  return {
    clientUrl,
    // taskgate reads and writes its tables in SQL (src/core/runs.ts and its kin): no entity is
    // declared; a task that wants an EntityManager uses it for its own queries.
    entities: [],
    extensions: [Migrator],
    discovery: { warnWhenNoEntities: false },
    // MikroORM creates a missing database by default: a mistyped DATABASE_URL would become an
    // empty database. taskgate never creates one (src/db/connect.ts says what is wrong instead).
    ensureDatabase: false,
    // MikroORM runs the migrations and serves tasks that ask for an EntityManager; taskgate's own
    // SQL goes through src/db/sql.ts. A small pool that holds nothing while idle.
    pool: { min: 0, max: 2, acquireTimeoutMillis: 10_000, idleTimeoutMillis: 10_000 },
    driverOptions: {
      connection: { connectionTimeoutMillis: 5_000, keepAlive: true },
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

/** The same ORM made without connecting first: it connects on its first query (see LazyOrm). */
export function initORMSync(clientUrl: string): MikroORM {
  return MikroORM.initSync(ormOptions(clientUrl));
}

/** SQLSTATEs of two replicas creating taskgate's schema or migrations table at the same moment. */
const CREATE_RACE = new Set(['23505', '42P06', '42P07']);

/**
 * Applies every pending migration; returns the names applied. Replicas starting together take
 * turns: the migrations run in one transaction that first takes a transaction-level advisory
 * lock, which holds behind a transaction pooler (a session lock would leak there) and is
 * released by the commit or by the connection's end, whatever happens.
 */
export async function migrate(orm: MikroORM): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      const applied = await orm.em.transactional(async (em) => {
        await em.execute(`select pg_advisory_xact_lock(hashtextextended('taskgate:migrate', 0))`);
        return orm.getMigrator().up({ transaction: em.getTransactionContext() });
      });
      return applied.map((m) => m.name);
    } catch (error) {
      // The migrator creates its own table before the lock is taken: the loser of that race retries.
      if (!CREATE_RACE.has((error as { code?: string }).code ?? '') || attempt >= 3) throw error;
    }
  }
}
