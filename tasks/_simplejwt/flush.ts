import pg from 'pg';

/**
 * The SQL of `flushexpiredtokens_daily`: djangorestframework-simplejwt's
 * `OutstandingToken.objects.filter(expires_at__lte=cutoff).delete()` (expired tokens go with their
 * blacklist rows, nothing else does), in short batches instead of one transaction holding every
 * expired row in memory. Each batch walks the primary key, deletes the expired tokens first (taking
 * their locks), then, in a fresh snapshot, their blacklist rows, so that an application
 * blacklisting a token meanwhile never makes the flush fail. Why each statement is shaped as it
 * is, with the alternatives measured: docs/design/flush.md.
 */

import type { Sql, SqlClient } from '../../src/db/sql.js';
import { TaskFailure } from '../../src/task.js';
import { againAfterDeadlock } from '../_shared/deadlocks.js';
import { nextBatchSize } from '../_shared/pacing.js';

export { MAX_BATCH_SIZE, MIN_BATCH_SIZE, nextBatchSize } from '../_shared/pacing.js';

export type { Sql, SqlClient };

export interface TokenTables {
  outstanding: string;
  blacklist: string;
}

const quote = (name: string) => pg.escapeIdentifier(name);

/** The bigint range: batches walk ids from the lowest possible one, so none is left out. */
const MIN_ID = -(2n ** 63n);
const MAX_ID = 2n ** 63n - 1n;

/** The tables as they resolve on the search path, and the blacklist's foreign keys to the tokens. */
function describeTokenTablesSql(): string {
  return `select current_database() as database,
                 to_regclass($1)::text as outstanding,
                 to_regclass($2)::text as blacklist,
                 (select coalesce(json_agg(json_build_object('name', conname, 'deferrable', condeferrable)), '[]')
                    from pg_constraint
                   where contype = 'f' and conrelid = to_regclass($2) and confrelid = to_regclass($1)) as keys`;
}

/**
 * Each batch runs under READ COMMITTED whatever the database's default, because the design relies
 * on the second statement's fresh snapshot (the transaction is begun so). SET CONSTRAINTS makes a
 * deferrable key that was declared INITIALLY IMMEDIATE behave as Django's INITIALLY DEFERRED one.
 */
function deferConstraintsSql(): string {
  return 'set constraints all deferred';
}

/**
 * $1 lowest id of the batch, $2 batch size. The batch's upper end: the id `batchSize` rows on
 * (or the last id), from the primary key alone (an index-only scan on a vacuumed table). Null once
 * no row is left from $1 on.
 */
function batchUpperBoundSql(tables: TokenTables): string {
  return `select max(id)::text as upper
      from (select id from ${quote(tables.outstanding)} where id >= $1::bigint order by id limit $2) as examined`;
}

/**
 * $1 lowest id, $2 highest id of the batch, $3 cutoff. `expires_at` is checked on the row version
 * the delete locks, so a token whose expiry the application extended meanwhile is kept. A plain
 * statement apart from the bound: one CTE finding the bound and deleting with RETURNING does the
 * same work and used 10 to 25% more server CPU in every comparison run.
 */
function deleteExpiredTokensSql(tables: TokenTables): string {
  return `delete from ${quote(tables.outstanding)}
     where id >= $1::bigint and id <= $2::bigint and expires_at <= $3::timestamptz`;
}

/** $1 lowest id, $2 highest id of the batch. Runs after deleteExpiredTokensSql, in its transaction. */
function deleteOrphanedBlacklistRowsSql(tables: TokenTables): string {
  return `delete from ${quote(tables.blacklist)} as b
     where b.token_id >= $1::bigint and b.token_id <= $2::bigint
       and not exists (select from ${quote(tables.outstanding)} as o where o.id = b.token_id)`;
}

/** $1 cutoff. What a flush would delete: read-only, for dry runs. */
export function countExpiredTokensSql(tables: TokenTables): string {
  return `select count(*)::bigint::text as outstanding, count(b.token_id)::bigint::text as blacklisted
      from ${quote(tables.outstanding)} as o
      left join ${quote(tables.blacklist)} as b on b.token_id = o.id
     where o.expires_at <= $1::timestamptz`;
}

export interface FlushOptions {
  tables: TokenTables;
  /** Tokens with `expires_at <= cutoff` are deleted. */
  cutoff: Date;
  /**
   * Rows the first batch examines; a batch deletes at most as many tokens as it examines. With
   * `batchTargetMs`, each next batch is sized from the last one's pace (nextBatchSize).
   */
  batchSize: number;
  /** How long a batch should hold its transaction; 0 (the default here): every batch examines `batchSize` rows. */
  batchTargetMs?: number;
  signal?: AbortSignal;
  /** Told after each committed batch. */
  onBatch?: (batch: BatchReport) => void;
  /** Told when a batch was rolled back by a deadlock and is run again. */
  onRetry?: (error: Error, attempt: number) => void;
}

interface BatchReport {
  batch: number;
  /** Rows of the outstanding table this batch examined at most. */
  size: number;
  /** Upper end of the id range this batch examined. */
  upper: string;
  deletedOutstanding: number;
  deletedBlacklisted: number;
  ms: number;
}

export interface FlushResult {
  cutoff: string;
  deletedOutstanding: number;
  deletedBlacklisted: number;
  batches: number;
  durationMs: number;
  /** The longest single batch transaction, begin to commit. */
  longestBatchMs: number;
  /** The most rows one batch examined. */
  largestBatchSize: number;
  /** Batches rolled back by a deadlock and run again. */
  retries: number;
  /** False when the signal stopped the run between batches; a rerun finishes the job. */
  complete: boolean;
}

export interface DryRunResult {
  cutoff: string;
  dryRun: true;
  wouldDeleteOutstanding: number;
  wouldDeleteBlacklisted: number;
  deletedOutstanding: 0;
  deletedBlacklisted: 0;
  batches: 0;
  durationMs: number;
}

export class TokenTablesError extends Error {
  override name = 'TokenTablesError';
}

/**
 * Checks the tables before touching anything, so a wrong name or an unusual schema gets a clear
 * message instead of an SQL error halfway through.
 */
export async function checkTokenTables(client: SqlClient, tables: TokenTables): Promise<void> {
  const { rows } = await client.query(describeTokenTablesSql(), [
    quote(tables.outstanding),
    quote(tables.blacklist),
  ]);
  const found = rows[0] as {
    database: string;
    outstanding: string | null;
    blacklist: string | null;
    keys: unknown;
  };
  const missing = [
    ...(found.outstanding ? [] : [tables.outstanding]),
    ...(found.blacklist ? [] : [tables.blacklist]),
  ];
  if (missing.length > 0) {
    // taskgate never creates the application's tables outside its embedded development database:
    // missing tables mean a wrong database, an application not migrated, or renamed tables.
    const names = missing.map((name) => `"${name}"`).join(' and ');
    throw new TokenTablesError(
      `simplejwt's ${missing.length > 1 ? 'tables' : 'table'} ${names} ${missing.length > 1 ? 'are' : 'is'} not in database "${found.database}": ` +
        "check that DATABASE_URL names the application's database, that the application's `manage.py migrate` " +
        'has run with rest_framework_simplejwt.token_blacklist installed, and SIMPLEJWT_OUTSTANDING_TABLE and ' +
        'SIMPLEJWT_BLACKLIST_TABLE if it renamed the tables',
    );
  }
  const keys = (typeof found.keys === 'string' ? JSON.parse(found.keys) : found.keys) as {
    name: string;
    deferrable: boolean;
  }[];
  if (keys.length === 0) {
    throw new TokenTablesError(
      `"${tables.blacklist}" has no foreign key to "${tables.outstanding}": these are not simplejwt's token tables`,
    );
  }
  const immediate = keys.find((key) => !key.deferrable);
  if (immediate) {
    throw new TokenTablesError(
      `foreign key "${immediate.name}" of "${tables.blacklist}" is not DEFERRABLE as simplejwt makes it: ` +
        'taskgate deletes a token and its blacklist row in one transaction and needs the check at commit',
    );
  }
}

/** Counts what a flush at `cutoff` would delete, and deletes nothing. */
export async function countExpiredTokens(
  client: SqlClient,
  { tables, cutoff }: Pick<FlushOptions, 'tables' | 'cutoff'>,
): Promise<DryRunResult> {
  const started = performance.now();
  await checkTokenTables(client, tables);
  const { rows } = await client.query(countExpiredTokensSql(tables), [cutoff.toISOString()]);
  return {
    cutoff: cutoff.toISOString(),
    dryRun: true,
    wouldDeleteOutstanding: Number(rows[0]!.outstanding),
    wouldDeleteBlacklisted: Number(rows[0]!.blacklisted),
    deletedOutstanding: 0,
    deletedBlacklisted: 0,
    batches: 0,
    durationMs: Math.round(performance.now() - started),
  };
}

/**
 * Deletes the expired tokens and their blacklist rows batch by batch, each batch a transaction of
 * its own on a pooled connection (none is held between batches). Stops between batches when
 * `signal` is aborted and reports what it did.
 */
export async function flushExpiredTokens(db: Sql, options: FlushOptions): Promise<FlushResult> {
  const { tables, cutoff, batchSize, batchTargetMs = 0, signal, onBatch, onRetry } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive whole number, not ${batchSize}`);
  }
  const started = performance.now();
  await checkTokenTables(db, tables);
  const statements = {
    upperBound: batchUpperBoundSql(tables),
    deleteTokens: deleteExpiredTokensSql(tables),
    deleteBlacklistRows: deleteOrphanedBlacklistRowsSql(tables),
  };
  const at = cutoff.toISOString();

  let lower: bigint | null = MIN_ID;
  let deletedOutstanding = 0;
  let deletedBlacklisted = 0;
  let batches = 0;
  let retries = 0;
  let longestBatchMs = 0;
  let largestBatchSize = 0;
  let size = batchSize;
  const counts = () => ({
    cutoff: at,
    deletedOutstanding,
    deletedBlacklisted,
    batches,
    durationMs: Math.round(performance.now() - started),
    longestBatchMs: Math.round(longestBatchMs),
    largestBatchSize,
    retries,
    complete: lower === null,
  });
  try {
    while (lower !== null && !signal?.aborted) {
      const from: string = String(lower);
      // A deadlock can happen when the application deletes a user (Django deletes the blacklist
      // rows, then the tokens: the opposite order) while a batch holds one of that user's expired
      // tokens. When PostgreSQL aborts the batch, it is rolled back whole and run again, and finds
      // the tokens the application has deleted meanwhile gone.
      const batch: BatchOutcome = await againAfterDeadlock(
        () => runBatch(db, statements, { from, batchSize: size, cutoff: at }),
        (error, attempt) => {
          retries += 1;
          onRetry?.(error, attempt);
        },
      );
      if (batch.upper === null) {
        lower = null;
        break;
      }
      batches += 1;
      deletedOutstanding += batch.tokens;
      deletedBlacklisted += batch.blacklisted;
      longestBatchMs = Math.max(longestBatchMs, batch.ms);
      largestBatchSize = Math.max(largestBatchSize, size);
      // The next batch starts after this one; none does after the largest possible id.
      lower = BigInt(batch.upper) < MAX_ID ? BigInt(batch.upper) + 1n : null;
      onBatch?.({
        batch: batches,
        size,
        upper: batch.upper,
        deletedOutstanding: batch.tokens,
        deletedBlacklisted: batch.blacklisted,
        ms: batch.ms,
      });
      size = nextBatchSize(size, batch.ms, batchTargetMs);
    }
  } catch (error) {
    // The batches committed before the failure stay deleted: the run says how many.
    throw new TaskFailure((error as Error)?.message ?? String(error), counts(), { cause: error });
  }
  return counts();
}

/** What one batch did: the last id it examined (null past the end), its deletions, its time. */
type BatchOutcome = { upper: string | null; tokens: number; blacklisted: number; ms: number };

/** One batch, one transaction: rolled back whole on any error. */
async function runBatch(
  db: Sql,
  sql: { upperBound: string; deleteTokens: string; deleteBlacklistRows: string },
  { from, batchSize, cutoff }: { from: string; batchSize: number; cutoff: string },
): Promise<BatchOutcome> {
  const started = performance.now();
  return db.transaction(
    async (tx) => {
      await tx.query(deferConstraintsSql());
      const upper =
        ((await tx.query(sql.upperBound, [from, batchSize])).rows[0]?.upper as string | null) ?? null;
      let tokens = 0;
      let blacklisted = 0;
      if (upper !== null) {
        tokens = (await tx.query(sql.deleteTokens, [from, upper, cutoff])).rowCount ?? 0;
        if (tokens > 0) blacklisted = (await tx.query(sql.deleteBlacklistRows, [from, upper])).rowCount ?? 0;
      }
      return { upper, tokens, blacklisted, ms: performance.now() - started };
    },
    { isolation: 'read committed' },
  );
}
