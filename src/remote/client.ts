import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pRetry from 'p-retry';
import { runOutcomeError } from '../core/outcome.js';
import { ERROR_CODES, type ErrorCode, TaskgateError } from '../errors.js';
import { wholeNumber } from '../formats.js';
import { describeFailure, send } from '../outbound.js';
import { signRequest } from '../signing.js';
import { DEFAULT_RETRY_DELAY_MS, DEFAULT_WAKE_TIMEOUT_MS, TRANSIENT_STATUSES } from './wakePolicy.js';

/**
 * The client side of `POST /cron/<task>`: what `taskgate trigger` (and any scheduler written in
 * TypeScript) uses to run a task on a remote taskgate that may be asleep. It wakes the host
 * (`GET /readyz` until 200), sends the trigger with one Idempotency-Key however often it has to
 * retry, so the task runs once, and follows a 202 to the run's end.
 */
export interface TriggerOptions {
  /** The remote taskgate, e.g. https://app.onrender.com (a path prefix is kept). */
  baseUrl: string;
  secret: string;
  task: string;
  params?: Record<string, unknown>;
  dryRun?: boolean;
  /** Send an HMAC signature (X-Cron-Signature) instead of the secret itself. */
  sign?: boolean;
  /** Default: a fresh UUID, reused by every retry of this trigger. */
  idempotencyKey?: string;
  /** A scheduler's fire, named so (`X-Cron-Scheduler`): the run is its slot's, run once whoever fires it. */
  scheduler?: string;
  /** Ask for 202 as soon as the run has started (`Prefer: respond-async`). */
  async?: boolean;
  /** With `async`: follow the run to its end anyway. Without `async` the client always waits. */
  wait?: boolean;
  /** How long to keep retrying while the host wakes or answers 503 (default 300 s). */
  wakeTimeoutMs?: number;
  /** Pause between retries (default 5 s; a Retry-After header wins). */
  retryDelayMs?: number;
  /** Longest single request (default 120 s; the server answers 202 well before). */
  requestTimeoutMs?: number;
  /** Pause between looks at a running run (default 2 s). */
  pollMs?: number;
  /** How long to follow a run before giving up on it (default 1 h). */
  waitTimeoutMs?: number;
  /** Progress lines for a person (never holding the secret). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface TriggerResult {
  /** taskgate's last JSON answer: the 200 body, the 202 body, the finished run, or the error. */
  body: unknown;
  /** Why the trigger did not succeed, with the code that gives the exit status; null on success. */
  error: TaskgateError | null;
  runId: string | null;
  idempotencyKey: string;
}

type Json = Record<string, unknown>;

interface Answer {
  status: number;
  body: Json | null;
  headers: Headers;
}

const TRANSIENT = new Set(TRANSIENT_STATUSES);

const DEFAULTS = {
  wakeTimeoutMs: DEFAULT_WAKE_TIMEOUT_MS,
  retryDelayMs: DEFAULT_RETRY_DELAY_MS,
  requestTimeoutMs: 120_000,
  pollMs: 2_000,
  waitTimeoutMs: 3_600_000,
};

function errorFrom(status: number, body: Json | null): TaskgateError {
  const code = typeof body?.code === 'string' && body.code in ERROR_CODES ? (body.code as ErrorCode) : null;
  const { status: _s, code: _c, message, ...details } = body ?? {};
  const text = typeof message === 'string' ? message : `taskgate answered HTTP ${status}`;
  return new TaskgateError(code ?? (status === 401 ? 'UNAUTHORIZED' : 'INTERNAL'), text, details);
}

function retryAfterMs(headers: Headers): number | null {
  const value = headers.get('retry-after');
  const seconds = wholeNumber(value);
  return seconds === null ? null : seconds * 1000;
}

const seconds = (ms: number) => Math.round(ms / 100) / 10;

/** A host name that never leaves this machine: localhost, 127.0.0.0/8, ::1. */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) ||
    host === '::1' ||
    host === '::ffff:127.0.0.1'
  );
}

/** A try worth another: no answer at all (`message` says why), or a transient one. */
class NotYet extends Error {
  constructor(
    message: string,
    readonly attempt: number,
    readonly answer?: Answer,
  ) {
    super(message);
  }
}

export class TriggerClient {
  private readonly o: Required<
    Omit<TriggerOptions, 'params' | 'signal' | 'log' | 'idempotencyKey' | 'scheduler'>
  > &
    TriggerOptions;
  private readonly base: URL;
  private readonly key: string;
  private readonly log: (line: string) => void;

  constructor(options: TriggerOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
      if (!['http:', 'https:'].includes(base.protocol)) throw new Error('not http');
    } catch {
      throw new TaskgateError(
        'BAD_REQUEST',
        `--url must be an http:// or https:// URL, not "${options.baseUrl}"`,
      );
    }
    this.base = base;
    this.o = { ...DEFAULTS, dryRun: false, sign: false, async: false, wait: false, ...options };
    // Signatures carry whole seconds and are accepted once: never sign twice in one second.
    if (this.o.sign) this.o.retryDelayMs = Math.max(this.o.retryDelayMs, 1_000);
    if (this.o.sign) this.o.pollMs = Math.max(this.o.pollMs, 1_000);
    this.key = options.idempotencyKey ?? randomUUID();
    this.log = options.log ?? (() => undefined);
    if (!this.o.sign && base.protocol === 'http:' && !isLoopback(base.hostname)) {
      this.log(
        `warning: sending CRON_SECRET_KEY over plain http:// to ${base.host}: anyone on the way can read it and run tasks with it; use https://, or --sign`,
      );
    }
  }

  private url(path: string): URL {
    return new URL(path.replace(/^\//, ''), this.base);
  }

  /**
   * One request. Credentials go only with `credentials` (never to /readyz) and only to the
   * configured origin; redirects are never followed (a 3xx is an answer like any other).
   */
  private async request(
    method: string,
    url: URL,
    { body, extra = {}, credentials = true }: { body?: string; extra?: Json; credentials?: boolean } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {
      Accept: 'application/json',
      ...(extra as Record<string, string>),
    };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (url.origin !== this.base.origin) {
      throw new TaskgateError(
        'UNREACHABLE',
        `taskgate pointed to ${url.origin}, another origin than ${this.base.origin}: not sending the secret there`,
      );
    }
    if (!credentials) {
      // A probe: no secret, no signature.
    } else if (this.o.sign) {
      headers['X-Cron-Signature'] = signRequest(this.o.secret, {
        method,
        path: url.pathname + url.search,
        body: body ?? '',
      });
    } else {
      headers['X-Cron-Secret'] = this.o.secret;
    }
    const answer = await send(url, {
      method,
      headers,
      body,
      timeoutMs: this.o.requestTimeoutMs,
      signal: this.o.signal,
      redirect: 'manual',
    });
    let json: Json | null = null;
    try {
      json = answer.text ? JSON.parse(answer.text) : null;
    } catch {
      json = null;
    }
    return { status: answer.status, body: json, headers: answer.headers };
  }

  /**
   * Sends the request until it gets an answer that is not transient or the next pause would end
   * past the wake time-out: then the last transient answer is the answer, and no answer at all is
   * UNREACHABLE. Only safe for requests that cannot act twice: GETs, and the POST with its key.
   */
  private untilAnswered(what: string, send: () => Promise<Answer>): Promise<Answer> {
    const deadline = Date.now() + this.o.wakeTimeoutMs;
    return pRetry(
      async (attempt) => {
        const answer = await send().catch((failure) => {
          // Aborted, or refused by this client itself (a foreign origin): retrying changes nothing.
          if (this.o.signal?.aborted || failure instanceof TaskgateError) throw failure;
          throw new NotYet(describeFailure(failure), attempt);
        });
        if (TRANSIENT.has(answer.status)) throw new NotYet(`HTTP ${answer.status}`, attempt, answer);
        return answer;
      },
      {
        retries: Number.POSITIVE_INFINITY,
        minTimeout: 0, // the pause is each try's own (a Retry-After wins): shouldRetry takes it
        shouldRetry: async ({ error }) => {
          if (!(error instanceof NotYet)) return false;
          const pause = (error.answer && retryAfterMs(error.answer.headers)) ?? this.o.retryDelayMs;
          if (Date.now() + pause > deadline) return false;
          this.log(`${what}: ${error.message}, retrying in ${seconds(pause)} s (attempt ${error.attempt})`);
          await sleep(pause, undefined, { signal: this.o.signal });
          return true;
        },
      },
    ).catch((error) => {
      if (!(error instanceof NotYet)) throw error;
      if (error.answer) return error.answer;
      throw new TaskgateError(
        'UNREACHABLE',
        `${what} got no answer from ${this.base.origin} (${error.message})`,
        { attempts: error.attempt },
      );
    });
  }

  /**
   * GET /readyz until it answers 200: a sleeping host refuses, hangs or says 503 first, and a
   * host whose database is away says 503 until it is back.
   */
  async wake(): Promise<void> {
    const started = Date.now();
    const answer = await this.untilAnswered('GET /readyz', () =>
      this.request('GET', this.url('/readyz'), { credentials: false }),
    );
    if (answer.status !== 200) {
      throw new TaskgateError(
        'UNREACHABLE',
        `GET /readyz answered HTTP ${answer.status}: is ${this.base.origin} taskgate?`,
      );
    }
    this.log(`taskgate is up (${seconds(Date.now() - started)} s)`);
  }

  /** Wakes the host and reads `GET /cron`: every task with its last runs and whether it is overdue. */
  async catalog(): Promise<Json[]> {
    await this.wake();
    const answer = await this.untilAnswered('GET /cron', () => this.request('GET', this.url('/cron')));
    if (answer.status !== 200 || !Array.isArray(answer.body?.tasks))
      throw errorFrom(answer.status, answer.body);
    return answer.body.tasks as Json[];
  }

  /** Wakes the host, triggers the task once, and (unless async without wait) follows it to its end. */
  async trigger(): Promise<TriggerResult> {
    await this.wake();
    const body = JSON.stringify({ ...this.o.params, ...(this.o.dryRun ? { dryRun: true } : {}) });
    const extra: Json = { 'Idempotency-Key': this.key };
    if (this.o.async) extra.Prefer = 'respond-async';
    if (this.o.scheduler) extra['X-Cron-Scheduler'] = this.o.scheduler;
    const path = `/cron/${encodeURIComponent(this.o.task)}`;
    const answer = await this.untilAnswered(`POST ${path}`, () =>
      this.request('POST', this.url(path), { body, extra }),
    );
    const result = (error: TaskgateError | null, final: unknown = answer.body): TriggerResult => ({
      body: final,
      error,
      runId: typeof answer.body?.runId === 'string' ? answer.body.runId : null,
      idempotencyKey: this.key,
    });
    if (answer.status === 200) return result(null);
    if (answer.status !== 202) return result(errorFrom(answer.status, answer.body));
    if (this.o.async && !this.o.wait) return result(null);
    const location = answer.headers.get('location') ?? `/cron/runs/${answer.body?.runId}`;
    this.log(`${this.o.task} is running; following ${location}`);
    const run = await this.follow(location);
    return {
      ...result(runOutcomeError(run), run),
      runId: String(run.id ?? answer.body?.runId ?? '') || null,
    };
  }

  /** Looks at the run until it is no longer running; returns the run record. */
  private async follow(location: string): Promise<Json> {
    const deadline = Date.now() + this.o.waitTimeoutMs;
    const url = /^https?:/i.test(location) ? new URL(location) : this.url(location);
    if (url.origin !== this.base.origin) {
      throw new TaskgateError(
        'UNREACHABLE',
        `taskgate answered with a Location on another origin (${url.origin}): not following it with the secret`,
        { location },
      );
    }
    for (;;) {
      const answer = await this.untilAnswered(`GET ${url.pathname}`, () => this.request('GET', url));
      if (answer.status !== 200) throw errorFrom(answer.status, answer.body);
      const run = (answer.body?.run ?? answer.body ?? {}) as Json;
      if (run.status !== 'running') return run;
      if (Date.now() + this.o.pollMs > deadline) {
        throw new TaskgateError('UNREACHABLE', `${this.o.task} was still running when the wait ran out`, {
          runId: run.id,
        });
      }
      await sleep(this.o.pollMs, undefined, { signal: this.o.signal });
    }
  }
}

/** Triggers a task on a remote taskgate; see TriggerClient. */
export function triggerRemote(options: TriggerOptions): Promise<TriggerResult> {
  return new TriggerClient(options).trigger();
}

export type RemoteOptions = Omit<
  TriggerOptions,
  'task' | 'params' | 'dryRun' | 'async' | 'wait' | 'idempotencyKey'
>;

/** The task catalog of a remote taskgate (`GET /cron`), waking it first. */
export function remoteCatalog(options: RemoteOptions): Promise<Json[]> {
  return new TriggerClient({ ...options, task: '' }).catalog();
}
