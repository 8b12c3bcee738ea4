import type { MikroORM } from '@mikro-orm/postgresql';

/**
 * A description of a table as PostgreSQL sees it (columns, constraints with their deferrability,
 * indexes), to compare a table before and after something touched the database.
 */
export async function describeTable(orm: MikroORM, table: string): Promise<unknown> {
  const connection = orm.em.getConnection();
  const columns = await connection.execute(
    `select column_name, data_type, is_nullable, column_default, is_identity, character_maximum_length
       from information_schema.columns where table_schema = 'public' and table_name = ? order by ordinal_position`,
    [table],
  );
  const constraints = await connection.execute(
    `select conname, contype, condeferrable, condeferred, confdeltype, pg_get_constraintdef(oid) as def
       from pg_constraint where conrelid = ?::regclass order by conname`,
    [table],
  );
  const indexes = await connection.execute(
    `select indexname, indexdef from pg_indexes where schemaname = 'public' and tablename = ? order by indexname`,
    [table],
  );
  return { columns, constraints, indexes };
}
