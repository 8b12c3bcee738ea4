import type { Context } from 'koa';
import type { Config } from '../config.js';
import { runOutcomeError } from '../core/outcome.js';
import type { Registry } from '../core/registry.js';
import type { Runner, RunRequest } from '../core/runner.js';
import type { RunRecord } from '../core/runs.js';
import { SCHEDULER_NAME } from '../core/slots.js';
import { TaskgateError } from '../errors.js';
import { wholeNumber } from '../formats.js';
import type { Caller } from './auth.js';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export interface RunRouteDeps {
  runner: Runner;
  config: Config;
  registry: Registry;
}

interface Preferences {
  respondAsync: boolean;
  /** RFC 7240 `wait=<seconds>`: how long the caller is willing to wait. */
  waitSeconds: number | null;
}

/** Reads the RFC 7240 `Prefer` header; unknown preferences are ignored, as the RFC asks. */
function preferences(header: string): Preferences {
  const result: Preferences = { respondAsync: false, waitSeconds: null };
  for (const token of header.split(',')) {
    const [name = '', value] = token
      .split(';')[0]!
      .split('=')
      .map((s) => s.trim().toLowerCase());
    if (name === 'respond-async') result.respondAsync = true;
    if (name === 'wait') result.waitSeconds = wholeNumber(value) ?? result.waitSeconds;
  }
  return result;
}

/** The JSON body: the task's params, plus `dryRun`. */
function runOptions(body: unknown): { params: Record<string, unknown>; dryRun: boolean } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new TaskgateError('INVALID_PARAMS', "the request body must be a JSON object of the task's params", {
      errors: [{ field: null, message: 'expected an object' }],
    });
  }
  const { dryRun, ...params } = body as Record<string, unknown>;
  if (dryRun !== undefined && typeof dryRun !== 'boolean') {
    throw new TaskgateError('INVALID_PARAMS', 'dryRun must be true or false', {
      errors: [{ field: 'dryRun', message: 'expected a boolean' }],
    });
  }
  return { params, dryRun: dryRun ?? false };
}

function idempotencyKey(ctx: Context): string | null {
  const key = ctx.get('idempotency-key');
  if (key === '') return null;
  if (!IDEMPOTENCY_KEY.test(key)) {
    throw new TaskgateError('BAD_REQUEST', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  return key;
}

/**
 * The finished run, or null when it has not finished within `ms`. The run goes on either way:
 * only this request stops waiting for it.
 */
async function waitAtMost(runner: Runner, runId: string, ms: number): Promise<RunRecord | null> {
  if (ms <= 0) return null;
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const waiting = runner.wait(runId, stop.signal);
  // Once the time-out has answered, a late failure of the wait has no one left to tell.
  waiting.catch(() => undefined);
  try {
    return await Promise.race([
      waiting,
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

export const runLocation = (runId: string) => `/cron/runs/${runId}`;

function accepted(ctx: Context, run: RunRecord, prefs: Preferences): void {
  const location = runLocation(run.id);
  ctx.status = 202;
  ctx.set('Location', location);
  if (prefs.respondAsync) ctx.set('Preference-Applied', 'respond-async');
  ctx.body = {
    status: 'accepted',
    task: run.task,
    runId: run.id,
    message: `${run.task} is running: GET ${location} tells how it ends`,
    location,
  };
}

/** A finished run as an answer: 200 when it succeeded, an error with a stable code otherwise. */
function finished(ctx: Context, run: RunRecord): void {
  const error = runOutcomeError(run);
  if (error) throw error;
  ctx.body = {
    status: 'success',
    task: run.task,
    runId: run.id,
    durationMs: run.durationMs,
    message: `${run.task} succeeded${run.dryRun ? ' (dry run)' : ''}`,
    result: run.result,
    dryRun: run.dryRun,
  };
}

/**
 * Starts the task through the runner and answers: at once with 202 when the caller prefers
 * (`Prefer: respond-async`), else when the run ends, or with 202 once SYNC_WAIT_MS (or the
 * caller's `Prefer: wait=`) has passed, so no proxy time-out cuts a long run's answer.
 */
export async function startTask(ctx: Context, deps: RunRouteDeps, task: string): Promise<void> {
  const { params, dryRun } = runOptions(ctx.request.body);
  const qstash = (ctx.state.caller as Caller | undefined) === 'qstash';
  // A QStash schedule's deliveries carry its id; a one-off message does not.
  const scheduler = schedulerOf(ctx) ?? (qstash && ctx.get('upstash-schedule-id') !== '' ? 'qstash' : null);
  if (scheduler && dryRun) {
    throw new TaskgateError(
      'INVALID_PARAMS',
      'a scheduled fire is never a dry run: send dryRun without X-Cron-Scheduler',
      {
        errors: [{ field: 'dryRun', message: 'not with a scheduler' }],
      },
    );
  }
  await startAndAnswer(ctx, deps, {
    task,
    params,
    dryRun,
    trigger: scheduler ?? (qstash ? 'qstash' : 'http'),
    idempotencyKey: idempotencyKey(ctx) ?? (qstash ? qstashMessageKey(ctx) : null),
    requestId: ctx.requestId,
    ...(scheduler ? { scheduled: {} } : {}),
  });
}

/** Names no request may give as its scheduler: the runs taskgate starts by itself. */
const OWN_SCHEDULERS = new Set(['clock', 'catch-up', 'cli', 'http']);

/**
 * The scheduler a request says fired it (`X-Cron-Scheduler: github`, or `?scheduler=github` for a
 * cron service that sets no header): its run is then the slot's (src/core/slots.ts).
 */
function schedulerOf(ctx: Context): string | null {
  const query = ctx.query.scheduler;
  const name = ctx.get('x-cron-scheduler') || (typeof query === 'string' ? query : '');
  if (name === '') return null;
  if (!SCHEDULER_NAME.test(name) || OWN_SCHEDULERS.has(name)) {
    throw new TaskgateError(
      'BAD_REQUEST',
      'X-Cron-Scheduler must name the scheduler in 1 to 32 lower-case letters, digits and dashes (github, cron-job-org, …), and not clock, catch-up, cli or http',
    );
  }
  return name;
}

/**
 * QStash retries a message it got no 2xx for, each delivery with a new signature and the same
 * `Upstash-Message-Id`: that id, as the idempotency key, makes a retry after a lost answer the
 * same run. (The header is covered by no signature; it only names which run to replay.)
 */
function qstashMessageKey(ctx: Context): string | null {
  const id = ctx.get('upstash-message-id');
  const key = `qstash:${id}`;
  return id !== '' && IDEMPOTENCY_KEY.test(key) ? key : null;
}

/**
 * GET /cron/:task, as Vercel Cron calls it: no params, no dry run, and always a scheduled fire.
 * Its run is its slot's, decided on the database clock (src/core/slots.ts): a scheduler that
 * delivers one slot twice, or a replica whose clock reads a few seconds early, gets the slot's
 * run back, and a slot whose run failed can be tried again. A task without a schedule just runs.
 */
export async function startFromGet(ctx: Context, deps: RunRouteDeps, task: string): Promise<void> {
  if (ctx.querystring !== '') {
    throw new TaskgateError(
      'BAD_REQUEST',
      'GET /cron/:task takes no parameters: POST a JSON body to pass them',
    );
  }
  await startAndAnswer(ctx, deps, {
    task,
    params: {},
    dryRun: false,
    trigger: ctx.get('user-agent').startsWith('vercel-cron') ? 'vercel' : 'http-get',
    idempotencyKey: idempotencyKey(ctx),
    requestId: ctx.requestId,
    scheduled: {},
  });
}

/** Starts a run and answers as `trigger` does (a rerun answers the same way). */
export async function startAndAnswer(ctx: Context, deps: RunRouteDeps, request: RunRequest): Promise<void> {
  const prefs = preferences(ctx.get('prefer'));
  const { run, replayed } = await deps.runner.start(request);
  ctx.state.runId = run.id;
  if (replayed) ctx.set('Idempotent-Replayed', 'true');
  let waitMs = prefs.respondAsync ? 0 : deps.config.http.syncWaitMs;
  if (prefs.waitSeconds !== null) waitMs = Math.min(waitMs, prefs.waitSeconds * 1000);
  const end = run.status === 'running' ? await waitAtMost(deps.runner, run.id, waitMs) : run;
  if (end) finished(ctx, end);
  else accepted(ctx, run, prefs);
}
