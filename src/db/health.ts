import type { MikroORM } from '@mikro-orm/postgresql';

/** Asks the database for `select 1`; resolves with null when it answers in time, else the reason. */
export async function checkDatabase(orm: MikroORM, timeoutMs = 3_000): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
  });
  try {
    return await Promise.race([
      orm.em
        .getConnection()
        .execute('select 1')
        .then(() => null),
      timeout,
    ]);
  } catch (error) {
    return (error as Error).message || 'database unavailable';
  } finally {
    clearTimeout(timer);
  }
}
