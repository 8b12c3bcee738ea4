import pg from 'pg';
import { TaskgateError } from '../errors.js';

/**
 * taskgate's one way to run SQL at run time: a node-postgres pool where every use of a
 * connection has a deadline, so a frozen or vanished database costs a caller a bounded wait.
 *
 * Why its own pool beside MikroORM's (which keeps the migrations): the knex pool under MikroORM
 * cannot time out a query without leaving the connection half-used, nor cancel one. Here a use
 * that outlives its deadline has its connection destroyed (so the pool never hands out a
 * connection with a query still in flight), and `cancelAll` sends PostgreSQL's cancel request for
 * the statements in flight, which PgBouncer forwards to the right server connection.
 *
 * Nothing here holds a connection between uses: a run that sleeps or waits holds none, so tasks
 * that share a cron can all run on a small pool.
 */

/** What a task or a statement function needs of a connection: node-postgres' `query`. */
export interface SqlClient {
  query<Row extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Row[]; rowCount: number | null }>;
}

export interface TransactionOptions {
  /** Whole-transaction deadline (ms); also PostgreSQL's statement_timeout inside it. */
  timeoutMs?: number;
  isolation?: 'read committed' | 'repeatable read' | 'serializable';
}

/** A database handle: single statements on any pooled connection, or a transaction on one. */
export interface Sql extends SqlClient {
  transaction<T>(fn: (tx: SqlClient) => Promise<T>, options?: TransactionOptions): Promise<T>;
}

export interface DbOptions {
  url: string;
  /** Most connections open at once (DATABASE_POOL_MAX). */
  max: number;
  /** Default deadline of one statement or one transaction (DATABASE_QUERY_TIMEOUT_MS). */
  queryTimeoutMs: number;
  /** Deadline of opening a new connection (DATABASE_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs: number;
  /** How long a caller waits for a connection when every one is busy. */
  poolWaitMs?: number;
  applicationName?: string;
}

/** SQLSTATE classes and node errors that mean "the database cannot be reached now", not "your SQL is wrong". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'EAI_AGAIN',
  '57P01', // admin_shutdown (pg_terminate_backend, restart)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, shutting down)
  '53300', // too_many_connections
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '08P01',
  '25P03', // idle_in_transaction_session_timeout
  '57P05', // idle_session_timeout
]);

const UNAVAILABLE_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|server closed the connection|no more connections allowed|Query read timeout|the database did not answer/i;

/** How long a client is told to wait before retrying a request refused for the database (seconds). */
export const RETRY_AFTER_SECONDS = 5;

/** True when `error` says the database is unreachable, restarting, saturated or too slow. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof TaskgateError) return error.code === 'DATABASE_UNAVAILABLE';
  const e = error as { code?: string; message?: string; errors?: unknown[] } | null;
  if (!e) return false;
  if (e.code && UNAVAILABLE_CODES.has(e.code)) return true;
  // AggregateError from net.connect (IPv4 and IPv6 both refused).
  if (Array.isArray(e.errors) && e.errors.some(isDatabaseUnavailable)) return true;
  return UNAVAILABLE_MESSAGES.test(e.message ?? '');
}

/** The error every caller sees when the database is not there: 503 with Retry-After. */
export function databaseUnavailable(cause?: unknown): TaskgateError {
  return new TaskgateError(
    'DATABASE_UNAVAILABLE',
    'the database is not reachable right now; try again shortly',
    { retryAfterSeconds: RETRY_AFTER_SECONDS },
    { cause },
  );
}

/** Rethrows unavailability as DATABASE_UNAVAILABLE, anything else as it is. */
export function translateDatabaseError(error: unknown): unknown {
  return isDatabaseUnavailable(error) && !(error instanceof TaskgateError)
    ? databaseUnavailable(error)
    : error;
}

class Deadline {
  private readonly at: number;
  /** Set once the database has answered a statement of this use (see Db.use). */
  answered = false;
  constructor(readonly ms: number) {
    this.at = performance.now() + ms;
  }
  get remaining(): number {
    return Math.max(0, this.at - performance.now());
  }
}

/** Resolves with `promise`, or rejects when `ms` pass first (then `onLate` gets a late value). */
function within<T>(promise: Promise<T>, ms: number, what: string, onLate?: (value: T) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  return Promise.race([
    promise.then((value) => {
      if (timedOut) onLate?.(value);
      return value;
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(databaseUnavailable(new Error(`the database did not answer ${what} within ${ms} ms`)));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class Db implements Sql {
  readonly pool: pg.Pool;
  private readonly busy = new Set<pg.PoolClient>();
  /** Connections handed out before: only those can have been closed by the server while idle. */
  private readonly used = new WeakSet<pg.PoolClient>();
  private closed = false;

  constructor(readonly options: DbOptions) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.max,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      // A dead peer (lost host, dropped NAT mapping) is noticed by the kernel, not only at the next query.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: options.applicationName ?? 'taskgate',
    });
    // An idle connection that dies (terminated, restarted server) must not crash the process;
    // the pool drops it and opens a fresh one on the next use.
    this.pool.on('error', () => undefined);
  }

  get queryTimeoutMs(): number {
    return this.options.queryTimeoutMs;
  }

  async query<Row extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
    options: { timeoutMs?: number } = {},
  ): Promise<{ rows: Row[]; rowCount: number | null }> {
    return this.use(options.timeoutMs, (client, deadline) => statement(client, deadline, text, values));
  }

  /**
   * BEGIN, `fn` on one connection, COMMIT (ROLLBACK on any error). The deadline covers the whole
   * transaction, and PostgreSQL's statement_timeout is set for it (SET LOCAL, so nothing leaks
   * to the next user of the server connection behind a transaction pooler).
   */
  async transaction<T>(fn: (tx: SqlClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.use(options.timeoutMs, async (client, deadline) => {
      const tx: SqlClient = {
        query: <Row extends Record<string, unknown>>(text: string, values?: unknown[]) =>
          statement<Row>(client, deadline, text, values),
      };
      const begin = options.isolation ? `begin isolation level ${options.isolation}` : 'begin';
      const timeout = `set local statement_timeout = ${Math.max(1, Math.ceil(deadline.ms))}`;
      try {
        // One round trip for both (the simple protocol takes several statements without parameters).
        await tx.query(`${begin}; ${timeout}`);
        const result = await fn(tx);
        await tx.query('commit');
        return result;
      } catch (error) {
        await within(client.query('rollback'), Math.max(1, deadline.remaining), 'rollback').catch(
          () => undefined,
        );
        throw error;
      }
    });
  }

  /**
   * Sends PostgreSQL's cancel request for every statement in flight on this pool: what shutdown
   * does once its grace is over, so no statement goes on after taskgate has given up on it.
   */
  async cancelAll(): Promise<void> {
    await Promise.all(
      [...this.busy].map(async (client) => {
        const active = (client as unknown as { activeQuery?: unknown }).activeQuery;
        if (!active) return;
        const canceller = new pg.Client({ connectionString: this.options.url });
        canceller.on('error', () => undefined);
        try {
          // node-postgres opens a bare connection that carries the cancel key, as libpq does.
          (canceller as unknown as { cancel(c: pg.PoolClient, q: unknown): void }).cancel(client, active);
        } catch {
          // Cancelling is best effort: the connection is destroyed below in any case.
        }
      }),
    );
  }

  /** Cuts every connection now in use (after cancelAll, at the end of a bounded shutdown). */
  destroyBusy(): void {
    for (const client of this.busy) destroy(client);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.destroyBusy();
    await this.pool.end();
  }

  private async use<T>(
    timeoutMs: number | undefined,
    fn: (client: pg.PoolClient, deadline: Deadline) => Promise<T>,
  ): Promise<T> {
    const deadline = new Deadline(timeoutMs ?? this.options.queryTimeoutMs);
    for (let attempt = 1; ; attempt++) {
      const client = await this.acquire(deadline);
      const reused = this.used.has(client);
      if (!reused) {
        this.used.add(client);
        // A connection that dies while checked out (terminated, cut, or destroyed here after a
        // deadline) also emits 'error'; its statement's rejection is what the caller handles.
        client.on('error', () => undefined);
      }
      this.busy.add(client);
      let broken: unknown;
      try {
        return await fn(client, deadline);
      } catch (error) {
        // A connection whose statement timed out still has it in flight, and one that failed
        // for the database's sake is dead: neither goes back to the pool.
        if (isDatabaseUnavailable(error)) {
          broken = error;
          destroy(client);
          // A pooled connection the server closed while it sat idle (idle_session_timeout, a
          // terminated backend, a restart) fails its first statement without running it: once,
          // that use starts again on a fresh connection.
          const untouched = reused && !deadline.answered && isClosedWhileIdle(error);
          if (attempt === 1 && untouched && deadline.remaining > 0) continue;
        }
        throw translateDatabaseError(error);
      } finally {
        this.busy.delete(client);
        client.release(broken as Error | undefined);
      }
    }
  }

  private async acquire(deadline: Deadline): Promise<pg.PoolClient> {
    const saturated = this.pool.totalCount >= this.options.max && this.pool.idleCount === 0;
    // Waiting behind other users is bounded more tightly than opening a connection: a request
    // that cannot be served now is better answered 503 at once than after a long queue.
    const ms = Math.min(deadline.remaining, saturated ? (this.options.poolWaitMs ?? 2_000) : Infinity);
    try {
      return await within(this.pool.connect(), Math.max(1, ms), 'with a connection', (late) =>
        late.release(),
      );
    } catch (error) {
      throw translateDatabaseError(error);
    }
  }
}

/** One statement within the use's deadline; marks the use as answered once it is. */
async function statement<Row extends Record<string, unknown>>(
  client: pg.PoolClient,
  deadline: Deadline,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<Row>> {
  const result = await within(client.query<Row>(text, values), deadline.remaining, 'a statement');
  deadline.answered = true;
  return result;
}

/** The server ended the session before the statement reached it: safe to run it elsewhere. */
function isClosedWhileIdle(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (e.code === '57P05' || e.code === '57P01' || e.code === 'ECONNRESET' || e.code === 'EPIPE') return true;
  return /Connection terminated unexpectedly|Client has encountered a connection error/i.test(
    e.message ?? '',
  );
}

function destroy(client: pg.PoolClient): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
}
