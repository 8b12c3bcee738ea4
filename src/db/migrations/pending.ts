import type { SqlClient } from '../sql.js';

/**
 * The names of taskgate's migrations, in order: the same as `migrationsList` (./index.ts, a test
 * holds them equal), without loading MikroORM, which the migration classes extend.
 */
export const MIGRATION_NAMES = [
  'Migration0001TaskRun',
  'Migration0002Signatures',
  'Migration0003Incidents',
  'Migration0004Leases',
  'Migration0005OperatorControls',
  'Migration0006PauseEvents',
  'Migration0007Slots',
] as const;

/** The migrator's table is missing (42P01), or its schema is (3F000): nothing was ever applied. */
const NEVER_MIGRATED = new Set(['42P01', '3F000']);

/**
 * The migrations this database has not recorded, read with one query on MikroORM's own table. On
 * an up-to-date database (every start but the first after an upgrade) this is all start-up asks
 * of the migrations, and MikroORM is never loaded: it costs more to load than the rest of
 * `serve` together (see bench/README.md).
 */
export async function pendingMigrations(db: SqlClient): Promise<string[]> {
  try {
    const { rows } = await db.query<{ name: string }>('select name from taskgate.mikro_orm_migrations');
    const applied = new Set(rows.map((row) => row.name));
    return MIGRATION_NAMES.filter((name) => !applied.has(name));
  } catch (error) {
    if (NEVER_MIGRATED.has((error as { code?: string }).code ?? '')) return [...MIGRATION_NAMES];
    throw error;
  }
}
