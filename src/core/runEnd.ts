import pRetry from 'p-retry';
import { type Db, isDatabaseUnavailable } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { type Inflight, RunCancelled } from './runExecution.js';
import { LeaseLost } from './runSql.js';
import { explainAbandoned, findRun, finishRun, type RunOutcome, type RunRecord } from './runs.js';

// Recording a run's outcome: its end and what it logged, fenced by its lease (src/core/runs.ts,
// finishRun), retried while the database is away.

/** How long recording an end is retried while the database is away (outside shutdown). */
const END_RECORD_BUDGET_MS = 120_000;

/**
 * Records the end, retrying while the database is away (the lease is kept renewed meanwhile,
 * so a short outage costs nothing) and `closing()` is false. A run fenced off (its lease was
 * taken over, or it was marked abandoned) keeps the status it was given; only the reason it was
 * abandoned for is replaced with what happened here (explainAbandoned), with what the task returned.
 */
export async function recordEnd(
  db: Db,
  entry: Inflight,
  outcome: RunOutcome,
  logger: Logger,
  closing: () => boolean,
): Promise<RunRecord> {
  return pRetry(
    async () => {
      const log = entry.log.end();
      if (!entry.ended) {
        const finished = await finishRun(db, entry.run.id, outcome, log);
        entry.ended = true;
        if (finished) return finished;
        logger.warn(
          { status: outcome.status },
          'the run had lost its lease: its end is not recorded over what the new owner wrote',
        );
      }
      const what = { error: abandonedBecause(entry, outcome), result: outcome.result };
      return (
        (await explainAbandoned(db, entry.run.id, what, log)) ??
        (await findRun(db, entry.run.id)) ??
        entry.run
      );
    },
    {
      // 0.5 s doubling to 5 s between tries, for at most the budget.
      retries: Number.POSITIVE_INFINITY,
      minTimeout: 500,
      maxTimeout: 5_000,
      maxRetryTime: END_RECORD_BUDGET_MS,
      shouldRetry: ({ error, attemptNumber }) => {
        if (!isDatabaseUnavailable(error) || closing()) return false;
        logger.warn({ attempt: attemptNumber }, 'could not record the end of the run yet: retrying');
        return true;
      },
    },
  );
}

/** Why a run abandoned while its process was alive did not finish, as that process knows it. */
function abandonedBecause(entry: Inflight, outcome: RunOutcome): string {
  const reason = entry.abort.signal.reason;
  if (reason instanceof LeaseLost)
    return `the process running it was alive but ${reason.message}; it stopped the task`;
  const ended = `${outcome.status}${outcome.error ? `: ${outcome.error}` : ''}`;
  return `the process running it was alive but lost its lease before it could record the run's end (the task had ${ended})`;
}

/**
 * Records the end of a run whose task did not stop when a shutdown asked it to: cancelled when
 * an operator had asked first, else interrupted. Once, without retries: the process is leaving.
 */
export async function recordUnstopped(db: Db, entry: Inflight, logger: Logger): Promise<void> {
  const cancelled = entry.abort.signal.reason instanceof RunCancelled;
  await finishRun(
    db,
    entry.run.id,
    {
      status: cancelled ? 'cancelled' : 'interrupted',
      error: `${cancelled ? entry.abort.signal.reason.message : 'interrupted by shutdown'} (the task did not stop when asked)`,
    },
    entry.log.end(),
  ).catch((error) =>
    logger.error({ err: error, runId: entry.run.id }, 'could not record an interrupted run'),
  );
}
