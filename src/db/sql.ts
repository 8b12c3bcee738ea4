import { connect as connectTcp } from 'node:net';
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
 *
 * A handle (`db.handle`) is this pool with other options: another deadline, or a fence, which is
 * how a run's task gets SQL that stops with its lease (src/core/runSql.ts, docs/design/leases.md).
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

/**
 * What must still hold for a use of the database to go on: a run's lease (src/core/runSql.ts makes
 * the one taskgate has). A fenced use is a transaction, even for one statement, that starts by
 * proving the fence, so PostgreSQL's locks decide what a local clock cannot (docs/design/leases.md).
 */
export interface Fence {
  /**
   * How long the fence is still known to hold (ms), read just before anything is sent: by the
   * monotonic clock at that moment, never by a flag that a timer sets (a process resumed from a
   * pause gets its waiting query results before its timers fire). At 0 or less nothing is sent.
   */
  remainingMs(): number;
  /** SQL sent with BEGIN, in the same round trip: one row while the fence holds, locking what proves it. */
  proof: string;
  /** The error a use fails with once the fence no longer holds. */
  lost(): Error;
  /** What the fence is, for the message of a statement that outlasted it ("the run's lease ..."). */
  name: string;
}

export interface HandleOptions {
  /** Deadline of each statement or transaction, instead of the pool's default. */
  timeoutMs?: number;
  /** Every use proves this fence, and nothing is sent once it no longer holds. */
  fence?: Fence;
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
  // The database is there but will not take taskgate's work now: not the request's fault, and
  // over once an operator or a failover puts it right.
  '25006', // read_only_sql_transaction (default_transaction_read_only, a standby)
  '53000', // insufficient_resources
  '53100', // disk_full
  '53200', // out_of_memory
  '53400', // configuration_limit_exceeded
  '28000', // invalid_authorization_specification (the role may not log in: NOLOGIN)
  '28P01', // invalid_password (credentials rotated on one side only)
  '3D000', // invalid_catalog_name (the database is gone, or being restored)
  '57P04', // database_dropped
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
function databaseUnavailable(cause?: unknown): TaskgateError {
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
  constructor(ms: number) {
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

/** How one use of a connection goes: its deadline, its fence, and the handle it belongs to. */
interface UseOptions extends HandleOptions {
  /** The connections in use by one handle, so that it can cancel them (DbHandle.cancel). */
  inUse?: Set<pg.PoolClient>;
}

export class Db implements Sql {
  readonly pool: pg.Pool;
  private readonly busy = new Set<pg.PoolClient>();
  /** Connections with a statement sent and not yet answered (settling when it is): what a cancel request is for. */
  private readonly sending = new Map<pg.PoolClient, Promise<unknown>>();
  /** Connections handed out before: only those can have been closed by the server while idle. */
  private readonly used = new WeakSet<pg.PoolClient>();
  private reserve: Db | undefined;
  private closed = false;

  constructor(
    readonly options: DbOptions,
    poolOptions: Pick<pg.PoolConfig, 'allowExitOnIdle'> = {},
  ) {
    this.pool = new pg.Pool({
      connectionString: options.url,
      max: options.max,
      connectionTimeoutMillis: options.connectTimeoutMs,
      idleTimeoutMillis: 30_000,
      // A dead peer (lost host, dropped NAT mapping) is noticed by the kernel, not only at the next query.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: options.applicationName ?? 'taskgate',
      ...poolOptions,
    });
    // An idle connection that dies (terminated, restarted server) must not crash the process;
    // the pool drops it and opens a fresh one on the next use.
    this.pool.on('error', () => undefined);
    // And one that dies while checked out, or while its use is being given up (terminated by a
    // stopping server, cut, or destroyed here after a deadline) emits 'error' on the connection:
    // the rejection of what it was running is what the caller handles. Every connection the pool
    // makes gets the listener, whoever takes it.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  get queryTimeoutMs(): number {
    return this.options.queryTimeoutMs;
  }

  /**
   * A pool of one connection beside this one, for renewing leases (src/core/leaseKeeper.ts): tasks
   * and requests can take every connection of the main pool without starving the lease. Made on
   * first use, closed with this one; its idle connection never keeps the process alive.
   */
  get reserved(): Db {
    this.reserve ??= new Db(
      { ...this.options, max: 1, applicationName: `${this.options.applicationName ?? 'taskgate'} leases` },
      { allowExitOnIdle: true },
    );
    return this.reserve;
  }

  /** This pool with other options: another deadline, or a fence (src/core/runSql.ts). */
  handle(options: HandleOptions): DbHandle {
    return new DbHandle(this, options);
  }

  async query<Row extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
    options: UseOptions = {},
  ): Promise<{ rows: Row[]; rowCount: number | null }> {
    // A fenced statement is a transaction of its own: the proof must come first, inside it.
    if (options.fence) return this.transaction((tx) => tx.query<Row>(text, values), options);
    return this.use(options, (client, deadline) => statement(client, deadline, this.sending, text, values));
  }

  /**
   * BEGIN, `fn` on one connection, COMMIT (ROLLBACK on any error). The deadline covers the whole
   * transaction, and PostgreSQL bounds it too: statement_timeout and
   * idle_in_transaction_session_timeout are set to what is left of it (SET LOCAL, so nothing
   * leaks to the next user of the server connection behind a transaction pooler), so that a
   * client that freezes mid-transaction holds its locks no longer than that.
   *
   * Fenced: the deadline is also cut to what is left of the fence, the fence's proof runs first
   * (in BEGIN's round trip), and before each statement the fence is checked; once it no longer
   * holds, nothing more is sent and the connection is closed, which rolls the transaction back.
   */
  async transaction<T>(
    fn: (tx: SqlClient) => Promise<T>,
    options: TransactionOptions & UseOptions = {},
  ): Promise<T> {
    const { fence } = options;
    return this.use(options, async (client, deadline) => {
      let fenced = false;
      const send = <Row extends Record<string, unknown>>(text: string, values?: unknown[]) => {
        if (fence && fence.remainingMs() <= 0) {
          fenced = true;
          throw fence.lost();
        }
        return statement<Row>(client, deadline, this.sending, text, values);
      };
      // The server's bound: a little under the client's own deadline, so that a statement that is
      // merely slow is cancelled by the server, with its own error and the connection kept, before
      // this side gives up on the connection; and no longer than the fence is known to hold. The
      // client keeps its own deadline: a fence lost meanwhile cancels what is in flight
      // (DbHandle.cancel), and a frozen client is what the server's bound is for.
      const remaining = deadline.remaining;
      const own = remaining - Math.min(500, remaining / 10);
      const fenceMs = fence ? Math.max(0, fence.remainingMs()) : Number.POSITIVE_INFINITY;
      const boundByFence = fenceMs < own;
      const bound = Math.max(1, Math.floor(Math.min(own, fenceMs)));
      // One round trip for all of it (the simple protocol takes several statements without parameters).
      const begin = [
        options.isolation ? `begin isolation level ${options.isolation}` : 'begin',
        `set local statement_timeout = ${bound}`,
        `set local idle_in_transaction_session_timeout = ${bound}`,
        ...(fence ? [fence.proof] : []),
      ].join('; ');
      try {
        const opened = (await send(begin)) as unknown as pg.QueryResult[];
        if (fence && opened.at(-1)?.rowCount !== 1) {
          fenced = true;
          throw fence.lost();
        }
        const result = await fn({ query: send });
        await send('commit');
        return result;
      } catch (error) {
        if (fenced) destroy(client);
        else {
          await within(client.query('rollback'), Math.max(1, deadline.remaining), 'rollback').catch(
            () => undefined,
          );
        }
        if (fence && boundByFence && isStatementTimeout(error)) {
          throw Object.assign(
            new Error(
              `${(error as Error).message}: the transaction outlasted the ${bound} ms left of ${fence.name} when it began`,
              { cause: error },
            ),
            { code: (error as { code?: string }).code },
          );
        }
        throw error;
      }
    });
  }

  /**
   * Sends PostgreSQL's cancel request for every statement in flight on this pool: what shutdown
   * does once its grace is over, so no statement goes on after taskgate has given up on it.
   */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.sending.keys()].map((client) => this.cancelStatement(client)));
  }

  /** Cuts every connection now in use (after cancelAll, at the end of a bounded shutdown). */
  destroyBusy(): void {
    for (const client of this.busy) destroy(client);
  }

  /**
   * Cancels the statements in flight on `clients`, then cuts those connections. The cancel goes
   * first, and the statements get a moment to come back cancelled: a server connection that
   * PgBouncer loses mid-statement (its client gone) is closed without a cancel, and PostgreSQL
   * goes on with the statement until it next writes to it.
   */
  async cancelAndDestroy(clients: Iterable<pg.PoolClient>): Promise<void> {
    const list = [...clients];
    const inFlight = list.filter((client) => this.sending.has(client));
    await Promise.all(inFlight.map((client) => this.cancelStatement(client)));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(inFlight.map((client) => this.sending.get(client))),
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.min(CANCEL_SETTLE_MS, this.options.connectTimeoutMs));
      }),
    ]);
    clearTimeout(timer);
    for (const client of list) destroy(client);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.destroyBusy();
    await Promise.all([this.pool.end(), this.reserve?.close()]);
  }

  /**
   * PostgreSQL's cancel request for the statement in flight on `client`: a connection of its own
   * carrying the backend's key, as libpq and node-postgres send it, which PgBouncer maps to the
   * right server connection. Resolves once the server has taken it (it closes that connection),
   * or after the connect time-out when it cannot be reached (a frozen path): best effort, as the
   * connection is destroyed after it in any case.
   */
  private cancelStatement(client: pg.PoolClient): Promise<void> {
    const { processID, secretKey, host, port } = client as pg.PoolClient & {
      processID: number | null;
      secretKey: number | null;
    };
    if (processID === null || secretKey === null) return Promise.resolve();
    return new Promise((resolve) => {
      const socket = host.startsWith('/') ? connectTcp(`${host}/.s.PGSQL.${port}`) : connectTcp(port, host);
      const done = () => {
        socket.destroy();
        resolve();
      };
      socket.setTimeout(this.options.connectTimeoutMs, done);
      socket.on('error', done).on('close', done);
      socket.on('connect', () => {
        // CancelRequest: length 16, the code 80877102, the backend's process id and secret key.
        const message = Buffer.alloc(16);
        message.writeInt32BE(16, 0);
        message.writeInt32BE(80877102, 4);
        message.writeInt32BE(processID, 8);
        message.writeInt32BE(secretKey, 12);
        // Written, not ended: the server (or PgBouncer) closes this connection once it has acted on
        // it. PgBouncer 1.18 crashes when the canceller closes first.
        socket.write(message);
      });
    });
  }

  private async use<T>(
    options: UseOptions,
    fn: (client: pg.PoolClient, deadline: Deadline) => Promise<T>,
  ): Promise<T> {
    const deadline = new Deadline(options.timeoutMs ?? this.options.queryTimeoutMs);
    for (let attempt = 1; ; attempt++) {
      const client = await this.acquire(deadline);
      const reused = this.used.has(client);
      if (!reused) this.used.add(client);
      this.busy.add(client);
      options.inUse?.add(client);
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
          const untouched = reused && !deadline.answered && !cut.has(client) && isClosedWhileIdle(error);
          if (attempt === 1 && untouched && deadline.remaining > 0) continue;
        }
        throw translateDatabaseError(error);
      } finally {
        this.busy.delete(client);
        options.inUse?.delete(client);
        // A connection cut here (a fence lost, a handle cancelled) never goes back to the pool.
        client.release((broken ?? (cut.has(client) ? new Error('connection closed') : undefined)) as Error);
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

/**
 * The pool with options of its own (`Db.handle`): another deadline for every use, or a fence. It
 * knows the connections its uses hold, so that what it sent can be cancelled at once.
 */
export class DbHandle implements Sql {
  private readonly inUse = new Set<pg.PoolClient>();

  constructor(
    private readonly db: Db,
    private readonly options: HandleOptions,
  ) {}

  query<Row extends Record<string, unknown> = Record<string, unknown>>(
    text: string,
    values?: unknown[],
  ): Promise<{ rows: Row[]; rowCount: number | null }> {
    return this.db.query<Row>(text, values, { ...this.options, inUse: this.inUse });
  }

  transaction<T>(fn: (tx: SqlClient) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.db.transaction(fn, { ...this.options, ...options, inUse: this.inUse });
  }

  /** Cancels this handle's statements in flight (PostgreSQL's cancel) and cuts its connections. */
  cancel(): Promise<void> {
    return this.db.cancelAndDestroy(this.inUse);
  }
}

/** How long a cancelled statement gets to come back before its connection is cut anyway. */
const CANCEL_SETTLE_MS = 2_000;

/** One statement within the use's deadline; marks the use as answered once it is. */
async function statement<Row extends Record<string, unknown>>(
  client: pg.PoolClient,
  deadline: Deadline,
  sending: Map<pg.PoolClient, Promise<unknown>>,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<Row>> {
  const answer = client.query<Row>(text, values);
  sending.set(
    client,
    answer.catch(() => undefined),
  );
  try {
    const result = await within(answer, deadline.remaining, 'a statement');
    deadline.answered = true;
    return result;
  } finally {
    sending.delete(client);
  }
}

/** PostgreSQL cancelled the statement for its statement_timeout (not for a cancel request). */
function isStatementTimeout(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e.code === '57014' && /statement timeout/i.test(e.message ?? '');
}

/** The server ended the session before the statement reached it: safe to run it elsewhere. */
function isClosedWhileIdle(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  if (e.code === '57P05' || e.code === '57P01' || e.code === 'ECONNRESET' || e.code === 'EPIPE') return true;
  return /Connection terminated unexpectedly|Client has encountered a connection error/i.test(
    e.message ?? '',
  );
}

/** Connections closed by taskgate while in use. */
const cut = new WeakSet<pg.PoolClient>();

function destroy(client: pg.PoolClient): void {
  cut.add(client);
  client.connection.stream.destroy();
}
