/**
 * The SQL shape most chores of the Django pack share: delete the rows of one table that match a
 * condition (a time cutoff, say), in short transactions, and do to the rows pointing at them what
 * Django's `on_delete` does (CASCADE deletes them, SET_NULL empties the column).
 *
 * Why it is shaped so:
 * - Django creates its foreign keys DEFERRABLE INITIALLY DEFERRED and applies `on_delete` itself,
 *   in Python, before deleting. A batch deletes the matching rows FIRST, which takes their row
 *   locks, and only then, in a new statement (READ COMMITTED: a fresh snapshot), deletes or
 *   empties the rows pointing at them. A row the application points at one of them meanwhile is
 *   either seen by that statement, or its commit-time key check waits for the batch and then fails
 *   in the application, as it would against Django's own delete (see ../_simplejwt/flush.ts, whose
 *   tests replay these interleavings).
 * - Each batch examines a bounded number of rows, so every transaction is short whatever the share
 *   of matching rows: by default it walks the primary key (`key` walk: one pass over the table,
 *   which needs no index on the cutoff's column; many of upstream's have none); where the
 *   condition is a range on an indexed column, it can walk that index instead, oldest first
 *   (`indexed` walk), and then reads only the rows it deletes.
 * - The condition is checked by the DELETE itself, on the row version it locks: a row the
 *   application updated meanwhile (a token refreshed, an expiry extended) is judged as it is now.
 * - Batches are paced (../_shared/pacing.ts): each next one examines as many rows as take about
 *   `batchTargetMs` at the last one's pace.
 * - Memory is flat: a batch holds at most its own keys (only when rows point at the table).
 */

import pg from 'pg';
import type { Sql, SqlClient } from '../../src/db/sql.js';
import { againAfterDeadlock } from './deadlocks.js';
import { nextBatchSize } from './pacing.js';

const quote = (name: string) => pg.escapeIdentifier(name);

/** A table whose rows point at the deleted ones, and what Django does to them. */
interface Dependent {
  table: string;
  column: string;
  onDelete: 'cascade' | 'set null';
}

export interface DeleteRule {
  /** Names the rule in results and logs. */
  name: string;
  table: string;
  /** The table's primary key column. */
  key: string;
  /** Which rows: an SQL condition on the row, alias `t`, whose parameters are $1, $2… of `values`. */
  where: string;
  values: unknown[];
  dependents?: Dependent[];
  /**
   * A column the condition bounds from above (`t.col < $1`): when an index starts with it, batches
   * walk that index oldest first instead of the primary key.
   */
  indexed?: string;
}

export interface BatchOptions {
  /** Rows the first batch examines. */
  batchSize: number;
  /** How long a batch should take; 0 keeps every batch at batchSize. */
  batchTargetMs: number;
  signal?: AbortSignal;
  onBatch?: (batch: { rule: string; batch: number; size: number; deleted: number; ms: number }) => void;
  onRetry?: (error: Error, attempt: number) => void;
}

export interface RuleResult {
  deleted: number;
  /** Rows of each dependent table deleted (cascade) or emptied (set null), by `table.column`. */
  related: Record<string, number>;
  batches: number;
  longestBatchMs: number;
  /** False when the signal stopped it between batches; a rerun finishes the job. */
  complete: boolean;
}

interface Plan {
  keyType: string;
  walk: 'key' | 'indexed';
}

async function planOf(db: SqlClient, rule: DeleteRule): Promise<Plan> {
  const { rows } = await db.query<{ key_type: string | null; indexed: boolean }>(
    `select (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
              where a.attrelid = to_regclass($1) and a.attname = $2 and not a.attisdropped) as key_type,
            exists (select from pg_index i join pg_attribute a
                      on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                     where i.indrelid = to_regclass($1) and a.attname = $3) as indexed`,
    [quote(rule.table), rule.key, rule.indexed ?? ''],
  );
  const keyType = rows[0]?.key_type;
  if (!keyType) throw new Error(`table "${rule.table}" has no column "${rule.key}"`);
  return { keyType, walk: rule.indexed && rows[0]!.indexed ? 'indexed' : 'key' };
}

function dependentSql(dependent: Dependent, keyType: string): string {
  const table = quote(dependent.table);
  const column = quote(dependent.column);
  return dependent.onDelete === 'cascade'
    ? `delete from ${table} where ${column} = any($1::${keyType}[])`
    : `update ${table} set ${column} = null where ${column} = any($1::${keyType}[])`;
}

/** Deletes the rows `rule` matches, batch by batch, each batch one transaction. */
export async function deleteInBatches(db: Sql, rule: DeleteRule, options: BatchOptions): Promise<RuleResult> {
  const { batchTargetMs, signal, onBatch, onRetry } = options;
  const plan = await planOf(db, rule);
  const dependents = rule.dependents ?? [];
  const table = quote(rule.table);
  const key = quote(rule.key);
  const n = rule.values.length;
  const returning = dependents.length > 0 ? ` returning t.${key}` : '';
  const statements = {
    firstUpper: `select max(${key})::text as upper
                   from (select ${key} from ${table} order by ${key} limit $1) as examined`,
    nextUpper: `select max(${key})::text as upper
                  from (select ${key} from ${table} where ${key} > $1::${plan.keyType} order by ${key} limit $2) as examined`,
    firstDelete: `delete from ${table} as t
                   where t.${key} <= $${n + 1}::${plan.keyType} and (${rule.where})${returning}`,
    nextDelete: `delete from ${table} as t
                  where t.${key} > $${n + 1}::${plan.keyType} and t.${key} <= $${n + 2}::${plan.keyType}
                    and (${rule.where})${returning}`,
    indexedDelete: `delete from ${table} as t
                     where t.${key} in (select t.${key} from ${table} as t where (${rule.where})
                                         order by t.${quote(rule.indexed ?? rule.key)} limit $${n + 1}
                                           for update skip locked)${returning}`,
    dependents: dependents.map((d) => dependentSql(d, plan.keyType)),
  };

  const result: RuleResult = {
    deleted: 0,
    related: Object.fromEntries(dependents.map((d) => [`${d.table}.${d.column}`, 0])),
    batches: 0,
    longestBatchMs: 0,
    complete: false,
  };
  let lower: string | null = null;
  let size = options.batchSize;
  for (;;) {
    if (signal?.aborted) return result;
    const batch = await againAfterDeadlock(
      () =>
        db.transaction(
          async (tx) => {
            const started = performance.now();
            // A deferrable key declared INITIALLY IMMEDIATE is checked at commit too, as Django's are.
            if (dependents.length > 0) await tx.query('set constraints all deferred');
            let upper: string | null = null;
            let deleted: { rowCount: number | null; rows: Record<string, unknown>[] };
            if (plan.walk === 'indexed') {
              deleted = await tx.query(statements.indexedDelete, [...rule.values, size]);
            } else {
              const bound =
                lower === null
                  ? await tx.query(statements.firstUpper, [size])
                  : await tx.query(statements.nextUpper, [lower, size]);
              upper = (bound.rows[0]?.upper as string | null) ?? null;
              if (upper === null) return { upper, deleted: 0, touched: [] as number[], ms: 0, last: true };
              deleted =
                lower === null
                  ? await tx.query(statements.firstDelete, [...rule.values, upper])
                  : await tx.query(statements.nextDelete, [...rule.values, lower, upper]);
            }
            const count = deleted.rowCount ?? 0;
            const touched: number[] = [];
            if (count > 0 && dependents.length > 0) {
              const keys = deleted.rows.map((row) => row[rule.key]);
              for (const sql of statements.dependents)
                touched.push((await tx.query(sql, [keys])).rowCount ?? 0);
            }
            const last = plan.walk === 'indexed' && count < size;
            return { upper, deleted: count, touched, ms: performance.now() - started, last };
          },
          { isolation: 'read committed' },
        ),
      onRetry,
    );
    // The key walk has passed the last key; the indexed walk found nothing left.
    if (plan.walk === 'key' ? batch.upper === null : batch.deleted === 0) break;
    result.batches += 1;
    result.deleted += batch.deleted;
    batch.touched.forEach((count, i) => {
      const d = dependents[i]!;
      result.related[`${d.table}.${d.column}`]! += count;
    });
    result.longestBatchMs = Math.max(result.longestBatchMs, Math.round(batch.ms));
    onBatch?.({
      rule: rule.name,
      batch: result.batches,
      size,
      deleted: batch.deleted,
      ms: Math.round(batch.ms),
    });
    if (batch.last) break;
    lower = batch.upper;
    size = nextBatchSize(size, batch.ms, batchTargetMs);
  }
  result.complete = true;
  return result;
}

/** How many rows `rule` matches now: read-only, for dry runs and doctor. */
export async function countMatching(
  db: SqlClient,
  rule: Pick<DeleteRule, 'table' | 'where' | 'values'>,
): Promise<number> {
  const { rows } = await db.query(
    `select count(*)::bigint::text as n from ${quote(rule.table)} as t where (${rule.where})`,
    rule.values,
  );
  return Number(rows[0]!.n);
}
