/**
 * The task contract.
 *
 * Glossary
 * - task: a module in `tasks/` exporting one definition made with `defineTask`; its file name is its name.
 * - run: one execution of a task, recorded in `taskgate.task_run` whoever triggered it.
 * - trigger: who asked for a run (`cli`, `http`, ...), recorded with it.
 * - schedule: a 5-field cron expression in UTC saying when a run is expected; none for on-demand tasks.
 * - settings: environment variables a task reads (its table names, say), checked at start-up.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import type { z } from 'zod';
import type { Sql, SqlClient } from './db/sql.js';

/** One finding of `taskgate doctor`, printed as one line. */
export interface CheckResult {
  name: string;
  /** fail makes `doctor` exit 1; warn is worth reading; skip could not be checked here. */
  verdict: 'ok' | 'warn' | 'fail' | 'skip';
  message: string;
}

export interface CheckContext<Settings = Record<string, unknown>> {
  /** taskgate's SQL handle (as in a run); the checks only read. */
  db: SqlClient;
  /** The task's own settings, as in a run. */
  settings: Settings;
}

/** One logging method: fields, a message, or fields and a message (pino's API). */
export interface LogMethod {
  (fields: object, message?: string): void;
  (message: string): void;
}

/** The run's logger: pino's, bound to `{task, runId}`; its lines go wherever taskgate logs. */
export interface TaskLogger {
  fatal: LogMethod;
  error: LogMethod;
  warn: LogMethod;
  info: LogMethod;
  debug: LogMethod;
  trace: LogMethod;
  /** A logger whose lines also carry `bindings`. */
  child(bindings: Record<string, unknown>): TaskLogger;
}

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json | undefined };

export interface TaskContext<Params, Settings = Record<string, unknown>> {
  /** The parameters, validated and with their defaults applied. */
  params: Params;
  /**
   * SQL on connections the runner manages: `query` for one statement, `transaction(fn)` for
   * several on one connection. No connection is held between uses, and each use has the task's
   * query time-out (`queryTimeoutMs`, default DATABASE_QUERY_TIMEOUT_MS).
   *
   * Fenced by the run's lease (docs/guarantees.md): every use is a transaction (a single statement
   * too) that proves the lease first, and once the lease is lost nothing more is sent and what is
   * in flight is cancelled, so no statement of this run executes after another run has taken the
   * task. A statement or transaction lasts at most what is left of the lease when it begins
   * (RUN_LEASE_MS less two renewal periods), and statements PostgreSQL refuses inside a
   * transaction block (VACUUM, CREATE INDEX CONCURRENTLY) cannot go through it.
   */
  db: Sql;
  /**
   * A forked EntityManager of its own for this run (MikroORM), when the runner has one. Made when
   * first read: MikroORM is loaded then, once a process (about 0.25 s and 35 MB); `db` needs none of it.
   * Not fenced by the lease: what must never run twice at once goes through `db`.
   */
  em?: EntityManager;
  /** A child logger bound to `{task, runId}`. */
  logger: TaskLogger;
  /** The run's clock reading, taken once from the database when the run started. */
  now: Date;
  /**
   * Fires on the task's timeout, on shutdown, when an operator cancels the run and when the run
   * loses its lease: stop between units of work and return or throw. Check it before each call
   * outside PostgreSQL (HTTP, mail): the lease cannot fence those (docs/guarantees.md).
   */
  signal: AbortSignal;
  /** Report what would be done, change nothing. */
  dryRun: boolean;
  runId: string;
  /** The task's own settings (`settings` in its definition), read from the environment at start-up. */
  settings: Settings;
}

export interface TaskDefinition<
  Schema extends z.ZodType = z.ZodType,
  Result extends Json = Json,
  Settings extends z.ZodType = z.ZodType,
> {
  /** `^[a-z0-9_]+$`, equal to the module's file name. */
  name: string;
  /** One sentence. */
  description: string;
  /** 5-field cron expression (in UTC unless `timeZone` names a zone), or null for a task that only runs on demand. */
  schedule: string | null;
  /**
   * The IANA time zone the schedule is read in (`Europe/Berlin`); default UTC. A moment a DST
   * change skips runs once at the transition; a moment it repeats runs once.
   */
  timeZone?: string;
  /**
   * When taskgate starts or wakes and the task's latest slot (within `catchUpWindowMs`) has no
   * successful run: `latest` (the default) runs that slot once, `none` leaves it missed.
   */
  catchUp?: 'latest' | 'none';
  /** How far back catch-up looks for a missed slot (default: `graceMs`, or the schedule's own grace). */
  catchUpWindowMs?: number;
  /** A strict object schema with defaults; `{}` must parse. */
  params: Schema;
  /** Aborts the run after this long (default: 15 minutes). */
  timeoutMs?: number;
  /** Deadline of one statement or transaction of `ctx.db` (default: DATABASE_QUERY_TIMEOUT_MS). */
  queryTimeoutMs?: number;
  /** How late a scheduled run may be before the task counts as overdue (default: a sensible share of its period). */
  graceMs?: number;
  /**
   * More routes that run this task, for callers written for an older system (the seed's Django
   * view, say): `POST <path>` (with or without its trailing slash) behind the same secret, answered
   * like `POST /cron/<task>` except that a success gets `successBody`, byte for byte, when given.
   */
  aliases?: { path: string; successBody?: string }[];
  /**
   * Environment variables the task reads: a zod object over their text, with defaults. Checked
   * when the tasks load, like the rest of the configuration (a bad value stops start-up with one
   * line naming the variable); given to `run` and `check` as `settings`; listed by `taskgate list`.
   */
  settings?: Settings;
  /**
   * Does the work and returns what it did (recorded as the run's result). A task that fails after
   * doing part of its work throws a TaskFailure carrying what it did: the run is recorded failed,
   * with that result beside its error.
   */
  run(ctx: TaskContext<z.output<Schema>, z.output<Settings>>): Promise<Result>;
  /** What the task needs of the database, for `taskgate doctor`; reads only. */
  check?(ctx: CheckContext<z.output<Settings>>): Promise<CheckResult[]>;
  /**
   * Creates the tables the task works on in the embedded development database, which is
   * taskgate's own. Never called on a DATABASE_URL: there the application owns its tables.
   */
  prepareDevDatabase?(db: SqlClient): Promise<void>;
}

/** Marks a TaskFailure across copies of this module (a project's task and taskgate's runner may load two). */
const FAILURE = Symbol.for('taskgate.TaskFailure');

/**
 * A task's failure that says what the task did before it failed (the tokens a flush deleted before
 * a batch failed, say): thrown from `run`, the run is recorded failed with `message` as its error
 * and `result` as its result, so the work done is never lost with the failure.
 */
export class TaskFailure extends Error {
  override name = 'TaskFailure';
  readonly [FAILURE] = true;

  constructor(
    message: string,
    readonly result: Json,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** What a task that threw says it did: a TaskFailure's result, or nothing. */
export function resultOfFailure(error: unknown): Json | undefined {
  const failure = error as { [FAILURE]?: unknown; result?: Json } | null;
  return failure?.[FAILURE] === true ? failure.result : undefined;
}

/** Gives a task full type inference of its params in `run`. */
export function defineTask<
  Schema extends z.ZodType,
  Result extends Json,
  Settings extends z.ZodType = z.ZodObject<Record<string, never>>,
>(definition: TaskDefinition<Schema, Result, Settings>): TaskDefinition<Schema, Result, Settings> {
  return definition;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds tasks of every parameter shape
export type AnyTask = TaskDefinition<any, Json, any>;

export const DEFAULT_TIMEOUT_MS = 15 * 60_000;
