import { randomBytes } from 'node:crypto';
import type { MikroORM } from '@mikro-orm/postgresql';
import { initORM } from '../../src/db/orm.js';
import { Db } from '../../src/db/sql.js';
import { adminQuery, testCluster, urlFor } from './global.js';

export interface TestDatabase {
  name: string;
  url: string;
  orm: MikroORM;
  /** taskgate's runtime SQL handle on this database (src/db/sql.ts). */
  sql: Db;
  /** Closes the ORM and drops the database. */
  drop(): Promise<void>;
}

/**
 * A database of the test file's own. `migrated` copies the migrated template (fast); otherwise
 * the database is empty, for tests of migrations themselves.
 */
export async function createTestDatabase(options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  const { adminUrl, template, prefix } = testCluster();
  const name = `${prefix}${randomBytes(5).toString('hex')}`;
  await adminQuery(`create database ${name} template ${options.migrated === false ? 'template0' : template}`);
  const url = urlFor(adminUrl, name);
  const orm = await initORM(url);
  const sql = testDb(url);
  return {
    name,
    url,
    orm,
    sql,
    async drop() {
      await sql.close();
      await orm.close(true);
      await adminQuery(`drop database if exists ${name} with (force)`);
    },
  };
}

/** A runtime SQL handle with taskgate's defaults, for a test's own database URL. */
export function testDb(url: string, overrides: Partial<ConstructorParameters<typeof Db>[0]> = {}): Db {
  return new Db({ url, max: 10, queryTimeoutMs: 5_000, connectTimeoutMs: 5_000, ...overrides });
}
