import type { Db, SqlClient } from './sql.js';

/**
 * Whether connections reach PostgreSQL through a pooler in transaction (or statement) mode, as
 * Neon's and Supabase's pooled URLs do. There a client's session state (session advisory locks,
 * SET, prepared statements) stays on a server connection that other clients get between
 * transactions. It shows as backend process ids: on a direct connection (or a session pooler)
 * each client keeps one backend for its whole life; through a transaction pooler two clients
 * taking turns get each other's backend (PgBouncer hands out the connection freed last), or one
 * client's backend changes between its transactions.
 */
export async function throughTransactionPooler(db: Db, rounds = 3): Promise<boolean> {
  // Two connections of the pool's, held for the probe: no other use may come between.
  const a = await db.pool.connect();
  try {
    const b = await db.pool.connect();
    try {
      return await comparePids(a, b, rounds);
    } finally {
      b.release();
    }
  } finally {
    a.release();
  }
}

async function comparePids(a: SqlClient, b: SqlClient, rounds: number): Promise<boolean> {
  const pid = async (client: SqlClient) =>
    Number((await client.query('select pg_backend_pid() as pid')).rows[0]!.pid);
  const seenByA = new Set<number>();
  const seenByB = new Set<number>();
  for (let round = 0; round < rounds; round++) {
    seenByA.add(await pid(a));
    seenByB.add(await pid(b));
  }
  return seenByA.size > 1 || seenByB.size > 1 || [...seenByA].some((p) => seenByB.has(p));
}
