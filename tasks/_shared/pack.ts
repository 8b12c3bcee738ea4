/**
 * What every task of the Django pack shares: its parameters, settings of the same shapes, cutoffs
 * computed as upstream computes them, and one way to run (or count, on a dry run) a task's rules.
 */
import { z } from 'zod';
import type { Sql } from '../../src/db/sql.js';
import type { TaskLogger } from '../../src/task.js';
import { type BatchOptions, countMatching, type DeleteRule, deleteInBatches } from './batchDelete.js';
import { requireTables } from './checks.js';

/** Each pack task's batch parameters (as the flush's): the first batch's size and the pace of the next ones. */
export const batchParams = {
  batchSize: z.number().int().min(1).max(100_000).default(5_000),
  // 0: every batch examines batchSize rows.
  batchTargetMs: z.number().int().min(0).max(1_000).default(100),
};

/** A number of whole days, as upstream's `--days`/`--age` options take. */
export const days = (fallback: number) => z.number().int().min(0).max(100_000).default(fallback);

/** An optional non-negative number in an environment variable ("" and unset: none). */
export const optionalNumber = (what: string) =>
  z
    .string()
    .optional()
    .transform((value) => value?.trim() || undefined)
    .pipe(
      z
        .string()
        .regex(/^\d+(\.\d+)?$/, `must be a number of ${what}`)
        .optional(),
    );

/** A release of an upstream package ("5.39.0"): where its rules changed, the task follows the one given. */
export const release = (current: string) =>
  z
    .string()
    .optional()
    .transform((value) => value?.trim() || current)
    .pipe(z.string().regex(/^\d+(\.\d+){0,2}$/, 'must be a release number such as 1.2.3'));

/** Whether `version` is `floor` or later ("3.4" is "3.4.0"). */
export function atLeast(version: string, floor: string): boolean {
  const a = version.split('.').map(Number);
  const b = floor.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

export const yes = z
  .string()
  .optional()
  .transform((value) => value?.trim().toLowerCase() || 'false')
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' }))
  .transform((value) => ['true', '1', 'yes'].includes(value));

/**
 * `now` less a duration given in microseconds, to the microsecond, as Python's
 * `timezone.now() - timedelta(...)` computes it (a Date holds milliseconds only).
 */
export function before(now: Date, micros: bigint): string {
  const at = BigInt(now.getTime()) * 1000n - micros;
  const ms = at / 1000n - (at % 1000n < 0n ? 1n : 0n);
  const fraction = ((at % 1000n) + 1000n) % 1000n;
  const iso = new Date(Number(ms)).toISOString();
  return `${iso.slice(0, -1)}${String(fraction).padStart(3, '0')}Z`;
}

export const SECOND = 1_000_000n;
export const HOUR = 3_600n * SECOND;
export const DAY = 24n * HOUR;

/** A duration as Python's timedelta keeps it: whole microseconds, rounded to the nearest. */
export function microseconds(amount: string, unit: bigint): bigint {
  const [whole = '0', fraction = ''] = amount.split('.');
  const scale = 10n ** BigInt(fraction.length);
  const exact = (BigInt(whole) * scale + BigInt(fraction || '0')) * unit;
  return (exact * 2n + scale) / (2n * scale);
}

export interface PackRun {
  db: Sql;
  params: { batchSize: number; batchTargetMs: number };
  signal: AbortSignal;
  dryRun: boolean;
  logger: TaskLogger;
}

export type PackResult = {
  cutoffs: Record<string, string>;
  dryRun?: true;
  /** On a dry run: what each rule matches now (a later rule may match more once an earlier one has run). */
  wouldDelete?: Record<string, number>;
  /** Rows each rule deleted. */
  deleted: Record<string, number>;
  /** Rows of other tables deleted (CASCADE) or emptied (SET_NULL) with them, by `table.column`. */
  related: Record<string, number>;
  batches: number;
  durationMs: number;
  longestBatchMs: number;
  complete: boolean;
};

/**
 * Checks the tables, then runs the rules in order, each to its end, as upstream runs its queries
 * one after the other (a later rule sees what an earlier one deleted). A dry run counts what
 * each rule matches now and deletes nothing.
 */
export async function runPack(
  run: PackRun,
  spec: { tables: string[]; hint: string; cutoffs: Record<string, string>; rules: DeleteRule[] },
): Promise<PackResult> {
  const started = performance.now();
  const { db, params, signal, dryRun, logger } = run;
  await requireTables(db, spec.tables, spec.hint);
  const result: PackResult = {
    cutoffs: spec.cutoffs,
    deleted: {},
    related: {},
    batches: 0,
    durationMs: 0,
    longestBatchMs: 0,
    complete: true,
  };
  if (dryRun) {
    result.dryRun = true;
    result.wouldDelete = {};
    for (const rule of spec.rules) {
      result.wouldDelete[rule.name] = await countMatching(db, rule);
      result.deleted[rule.name] = 0;
    }
  } else {
    const options: BatchOptions = {
      batchSize: params.batchSize,
      batchTargetMs: params.batchTargetMs,
      signal,
      onBatch: (batch) => logger.debug(batch, 'batch committed'),
      onRetry: (error, attempt) =>
        logger.warn({ err: error, attempt }, 'batch rolled back by a deadlock; running it again'),
    };
    for (const rule of spec.rules) {
      result.deleted[rule.name] = 0;
      if (signal.aborted) {
        result.complete = false;
        continue;
      }
      const done = await deleteInBatches(db, rule, options);
      result.deleted[rule.name] = done.deleted;
      for (const [name, count] of Object.entries(done.related)) {
        result.related[name] = (result.related[name] ?? 0) + count;
      }
      result.batches += done.batches;
      result.longestBatchMs = Math.max(result.longestBatchMs, done.longestBatchMs);
      if (!done.complete) result.complete = false;
    }
    if (!result.complete) logger.warn(result, 'stopped between batches; the next run finishes the job');
  }
  result.durationMs = Math.round(performance.now() - started);
  return result;
}
