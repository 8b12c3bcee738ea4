import type { MikroORM } from '@mikro-orm/postgresql';

interface PgClient {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
}

/**
 * A PostgreSQL session advisory lock per task, held on one dedicated connection for the whole run.
 *
 * Why a dedicated connection: a session lock belongs to the backend that took it, and an
 * EntityManager fork may run each query on a different pooled connection, so the unlock could
 * land elsewhere and the lock would never be released. Why a session lock and not a transaction
 * lock: a run spans many short transactions (the flush commits batch by batch). If the process
 * dies, PostgreSQL drops the connection and with it the lock, so the task can run again.
 */
export class TaskLock {
  private constructor(
    private readonly orm: MikroORM,
    private readonly connection: PgClient,
    readonly task: string,
  ) {}

  /** Takes the task's lock without waiting; null when another session holds it. */
  static async tryAcquire(orm: MikroORM, task: string): Promise<TaskLock | null> {
    const client = orm.em.getConnection().getKnex().client;
    const connection = (await client.acquireConnection()) as PgClient;
    try {
      const { rows } = await connection.query(
        `select pg_try_advisory_lock(hashtextextended('taskgate:' || $1, 0)) as locked`,
        [task],
      );
      if (rows[0]?.locked === true) return new TaskLock(orm, connection, task);
    } catch (error) {
      await client.releaseConnection(connection);
      throw error;
    }
    await client.releaseConnection(connection);
    return null;
  }

  /** Releases the lock on the connection that took it, then returns the connection to the pool. */
  async release(): Promise<void> {
    const client = this.orm.em.getConnection().getKnex().client;
    try {
      await this.connection.query(`select pg_advisory_unlock(hashtextextended('taskgate:' || $1, 0))`, [
        this.task,
      ]);
    } finally {
      await client.releaseConnection(this.connection);
    }
  }
}
