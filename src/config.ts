import path from 'node:path';
import { z } from 'zod';
import { TaskgateError } from './errors.js';
import { wholeNumberText } from './formats.js';
import { loadProject } from './projectFile.js';
import {
  HOW_TO_MAKE_ONE,
  MIN_SECRET_BITS,
  qstashKeyWeakness,
  SECRET_PLACEHOLDER,
  secretWeakness,
} from './secretStrength.js';

export { SECRET_PLACEHOLDER };

/**
 * METRICS_TOKEN and STATUS_TOKEN only let their holder read: half a shared secret's strength will
 * do. QStash signing keys are held to it too: Upstash makes them of `sig_` and about 28 random
 * characters (some 160 bits), so the floor only stops a key someone typed.
 */
const MIN_TOKEN_BITS = 64;

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const integer = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((value) => (value === undefined || value.trim() === '' ? String(fallback) : value.trim()))
    .pipe(wholeNumberText())
    .pipe(z.number().int().min(min).max(max));

/** How many proxies in front of taskgate append to X-Forwarded-For; 0 trusts none. */
const proxyHops = optionalText
  .transform((value) => (value === undefined || value === 'false' || value === 'off' ? '0' : value))
  .pipe(
    wholeNumberText(
      'must be the number of proxies in front of taskgate (0: none; on Render: 2), not true',
    ).pipe(z.number().int().min(0).max(10)),
  );

/** An http(s) URL; it may hold a token, so the message never repeats it. */
const httpUrl = optionalText.refine((value) => {
  if (value === undefined) return true;
  try {
    return ['http:', 'https:'].includes(new URL(value).protocol);
  } catch {
    return false;
  }
}, 'must be an http:// or https:// URL');

/** `true` or `false` (also 1/0, yes/no, on/off); unset is `fallback`. */
const flag = (fallback: boolean) =>
  optionalText.transform((value, ctx) => {
    if (value === undefined) return fallback;
    const word = value.toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(word)) return true;
    if (['false', '0', 'no', 'off'].includes(word)) return false;
    ctx.addIssue({ code: 'custom', message: 'must be true or false' });
    return z.NEVER;
  });

/** `HEARTBEAT_URL_<TASK>`: one dead-man's-switch ping URL per task, the task name in capitals. */
export const HEARTBEAT_PREFIX = 'HEARTBEAT_URL_';
export const HEARTBEAT_DESCRIPTION =
  "a [dead-man's switch](operating.md#heartbeats)'s ping URL for one task, its name in capitals: `/start` when a run starts, the URL on success, `/fail` on failure";

/**
 * Every variable taskgate reads by name, each with what it means (`.describe`, or `.meta` with the
 * default in words where the default is not a plain value): docs/configuration.md's table is made
 * from these (`npm run docs:config`).
 */
export const configSchema = z.object({
  NODE_ENV: optionalText.pipe(z.enum(['development', 'production', 'test']).optional()).meta({
    default: '`development`',
    description:
      '`development`, `production` or `test`; `production` refuses to serve without `DATABASE_URL` and a strong `CRON_SECRET_KEY`',
  }),
  DATABASE_URL: optionalText
    .pipe(
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
        .optional(),
    )
    .meta({
      default: 'an embedded PostgreSQL (not in production)',
      description: '`postgres://…` of the database taskgate works on and keeps its own schema in',
    }),
  // The credentials' strength is judged in bits, with their clashes (credentialProblems).
  CRON_SECRET_KEY: optionalText.meta({
    default: 'made up at start and printed (development only)',
    description:
      'the shared secret schedulers send: worth 2^112 guesses, whatever its length ([strength](security.md#how-strong-a-secret-must-be); `openssl rand -hex 32`)',
  }),
  CRON_SECRET_KEY_PREVIOUS: optionalText.describe(
    'the previous secret, still accepted during a [rotation](security.md#rotating-the-secret)',
  ),
  TRUST_PROXY: proxyHops.describe(
    'how many proxies in front of taskgate append to `X-Forwarded-For` (Render: 2); 0 ignores the header',
  ),
  METRICS_TOKEN: optionalText.describe(
    'when set, `/metrics` asks for `Authorization: Bearer <token>` (worth 2^64 guesses, the same as no other credential); in production `/metrics` exists only when it is set',
  ),
  STATUS_TOKEN: optionalText.describe(
    "the [status page](operating.md#status-page)'s read-only credential (worth 2^64 guesses, the same as no other credential); in production `/status` exists only when it is set",
  ),
  SYNC_WAIT_MS: integer(25_000, 0, 600_000).describe(
    'how long a trigger waits for its run before answering 202 with a `Location`; 0 always answers 202',
  ),
  SIGNATURE_TOLERANCE_SECONDS: integer(300, 1, 3_600).describe(
    "how far a signed request's timestamp may be from taskgate's clock, either way",
  ),
  AUTH_FAILURE_LIMIT: integer(10, 1, 1_000_000_000).describe(
    'failed authentications one address (IPv6: one /64) may make per window before it gets 429',
  ),
  AUTH_FAILURE_WINDOW_SECONDS: integer(900, 1, 86_400).describe(
    "the failed-auth limiter's window, counted from an address's first failure",
  ),
  PORT: integer(3000, 0, 65535).describe('the port `serve` listens on'),
  HOST: optionalText.meta({
    default: '`0.0.0.0` in production, `127.0.0.1` otherwise',
    description: 'the address `serve` listens on',
  }),
  LOG_LEVEL: optionalText
    .pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional())
    .meta({
      default: "`info` (`warn` for the command line's task commands)",
      description: "pino's level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`",
    }),
  SHUTDOWN_GRACE_MS: integer(20_000, 0, 600_000).describe(
    'on SIGTERM, how long running tasks may finish before they are interrupted; the process ends within this plus 8 s',
  ),
  // Two at least: a run's claim and its end are recorded while its task holds a connection. The
  // leases are renewed on one more connection, beside these (Db.reserved).
  DATABASE_POOL_MAX: integer(10, 2, 1_000).describe(
    "most connections taskgate's pool opens for requests and tasks, 2 at least; one more of its own renews the leases, so tasks cannot starve them, and MikroORM's migrations add at most 2 (idle ones closed after 10 s); when all are busy, a request waits at most 2 s for one, then gets 503",
  ),
  DATABASE_QUERY_TIMEOUT_MS: integer(5_000, 100, 3_600_000).describe(
    'deadline of each statement or transaction taskgate makes; a task may set its own `queryTimeoutMs`',
  ),
  DATABASE_CONNECT_TIMEOUT_MS: integer(5_000, 100, 600_000).describe('deadline of opening one connection'),
  DATABASE_STARTUP_TIMEOUT_MS: integer(60_000, 0, 3_600_000).describe(
    'how long start-up retries an unreachable database (backoff from 0.5 s to 8 s, each try logged) before exiting 1',
  ),
  // A minute: well above what PgBouncer makes of a database restart (the restart plus its
  // server_login_retry, 15 s by default), so that a run keeps its lease through one.
  RUN_LEASE_MS: integer(60_000, 1_000, 3_600_000).describe(
    "a run's lease, renewed every 2 s (every third of it when that is shorter): a dead process's task is free this long after its last renewal; a task's statement or transaction lasts at most what is left of it ([fencing](guarantees.md#fencing-what-a-run-that-lost-its-lease-can-still-do)). A run keeps its lease through a database outage shorter than this less 2 s; behind PgBouncer an outage lasts the restart plus up to its `server_login_retry` (15 s by default): see [through a pooler](guarantees.md#through-a-pooler)",
  ),
  TASKGATE_CONFIG: optionalText.meta({
    default: '`taskgate.config.json` in the working folder',
    description:
      "the project's [config file](#the-config-file), which chooses the built-in tasks; named but missing, every command stops",
  }),
  TASKS_DIR: optionalText.meta({
    default: "the config file's `tasksDir` (`tasks`)",
    description: "the folder of the project's own task modules, relative to the working folder",
  }),
  ALERT_WEBHOOK_URL: httpUrl.describe(
    'where failed and overdue tasks are posted, once per incident (Slack-compatible JSON); treat it as a secret',
  ),
  OVERDUE_CHECK_INTERVAL_MS: integer(300_000, 0, 86_400_000).describe(
    'how often `serve` looks for overdue tasks; 0 never looks',
  ),
  TASKGATE_URL: httpUrl.describe(
    'the address of a remote taskgate: the default `--url` of `taskgate trigger` and `taskgate status`',
  ),
  ALLOW_GET_TRIGGERS: flag(false).describe(
    '`true` lets `GET /cron/<task>` with `Authorization: Bearer <secret>` run the task, for [Vercel Cron](schedulers.md#vercel-cron); off, GET is 405',
  ),
  INTERNAL_CLOCK: flag(true).describe(
    "`serve` fires each task's scheduled slots itself, besides any outside scheduler (a slot runs once whoever fires it); `false` leaves scheduling to the outside schedulers",
  ),
  QSTASH_CURRENT_SIGNING_KEY: optionalText.describe(
    "[Upstash QStash](schedulers.md#upstash-qstash)'s current signing key: both keys or neither, the same as no other credential, worth 2^64 guesses, not the SDK's development keys; unset, requests QStash signed are refused",
  ),
  QSTASH_NEXT_SIGNING_KEY: optionalText.describe("QStash's next signing key"),
  PUBLIC_URL: httpUrl.meta({
    default: '`RENDER_EXTERNAL_URL`',
    description:
      "taskgate's public `https://` address, required with the QStash keys: a QStash signature names the URL it was sent to",
  }),
  // Render sets it to the service's public address: PUBLIC_URL's default there.
  RENDER_EXTERNAL_URL: httpUrl.meta({
    default: 'set by Render',
    description: "the service's public address on Render",
  }),
});

/**
 * Every environment variable loadConfig reads by name (besides the HEARTBEAT_PREFIX family): what
 * the docs, .env.sample, render.yaml, the Dockerfile and docker-compose.yml may mention.
 */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(configSchema.shape);

/** The variables as the schema reads them: every type of Config below is derived from these. */
type Variables = z.output<typeof configSchema>;

/** Everything taskgate reads from its environment, checked (see loadConfig). */
export type Config = ReturnType<typeof settings>;
/** Missed-run alarms, heartbeats, and the remote taskgate the CLI's `trigger` and `status` call. */
export type SchedulingConfig = Config['scheduling'];
export type QstashConfig = NonNullable<Config['http']['qstash']>;

/** QStash needs both its signing keys and the address it calls, or nothing. */
function qstashConfig(vars: Variables) {
  const current = vars.QSTASH_CURRENT_SIGNING_KEY;
  const next = vars.QSTASH_NEXT_SIGNING_KEY;
  if (current === undefined && next === undefined) return null;
  if (current === undefined || next === undefined) {
    const missing = current === undefined ? 'QSTASH_CURRENT_SIGNING_KEY' : 'QSTASH_NEXT_SIGNING_KEY';
    throw new ConfigError(
      `${missing} is unset: QStash needs both its current and next signing keys (Upstash console, QStash, Signing keys)`,
    );
  }
  const publicUrl = vars.PUBLIC_URL ?? vars.RENDER_EXTERNAL_URL;
  if (publicUrl === undefined) {
    throw new ConfigError(
      'PUBLIC_URL is required with QStash signing keys: the https:// address QStash calls taskgate at (a signature names the URL it was sent to)',
    );
  }
  return {
    currentSigningKey: current,
    nextSigningKey: next,
    /** taskgate's public base URL (no trailing slash): a QStash signature names the URL it was sent to. */
    publicUrl: publicUrl.replace(/\/+$/, ''),
  };
}

export class ConfigError extends TaskgateError {
  override name = 'ConfigError';
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/**
 * Every credential taskgate accepts, in the order a clash is reported (the later one is named):
 * what each opens, how many bits of guessing it must be worth, and what to do when it is the same
 * as another. Each must differ from every other: a credential that does two jobs gives whoever
 * holds it for the lesser one the greater (the status page's read-only token minting QStash
 * tokens, a metrics scraper running tasks).
 */
const CREDENTIALS = [
  { variable: 'CRON_SECRET_KEY', bits: MIN_SECRET_BITS, own: HOW_TO_MAKE_ONE },
  {
    variable: 'CRON_SECRET_KEY_PREVIOUS',
    bits: MIN_SECRET_BITS,
    own: 'set it to the secret being replaced, or unset it',
  },
  {
    variable: 'METRICS_TOKEN',
    bits: MIN_TOKEN_BITS,
    own: `give /metrics a token of its own (${HOW_TO_MAKE_ONE})`,
  },
  {
    variable: 'STATUS_TOKEN',
    bits: MIN_TOKEN_BITS,
    own: `give the status page a token of its own (${HOW_TO_MAKE_ONE})`,
  },
  {
    variable: 'QSTASH_CURRENT_SIGNING_KEY',
    bits: MIN_TOKEN_BITS,
    own: "copy QStash's own key from the Upstash console (QStash, Signing keys)",
  },
  {
    variable: 'QSTASH_NEXT_SIGNING_KEY',
    bits: MIN_TOKEN_BITS,
    own: "copy QStash's own key from the Upstash console (QStash, Signing keys)",
  },
] as const;

/**
 * What is wrong with the credentials that are set, one line each naming the variable: one that is
 * the same as another, or one an attacker could guess (secretStrength.ts).
 */
function credentialProblems(vars: Variables): string[] {
  const problems: string[] = [];
  CREDENTIALS.forEach(({ variable, bits, own }, i) => {
    const value = vars[variable];
    if (value === undefined) return;
    const same = CREDENTIALS.slice(0, i).find((earlier) => vars[earlier.variable] === value);
    if (same) {
      problems.push(`${variable} is the same as ${same.variable}: ${own}`);
      return;
    }
    const weakness = variable.startsWith('QSTASH_')
      ? qstashKeyWeakness(value, bits)
      : secretWeakness(value, bits);
    if (weakness) problems.push(`${variable} ${weakness}`);
  });
  return problems;
}

export interface LoadConfigOptions {
  /** Makes up a secret when none is set outside production; the caller prints it once. */
  generateSecret?: () => string;
  /** LOG_LEVEL when unset (the CLI's task commands default to warnings only). */
  defaultLogLevel?: string;
  /**
   * Whether production insists on CRON_SECRET_KEY (default true). Only `serve` checks callers;
   * commands that never use the secret (list, runs, status, doctor, ...) need none.
   */
  requireSecret?: boolean;
  /** Whether production insists on DATABASE_URL (default true): `build` and `workflow` never open one. */
  requireDatabase?: boolean;
  /** Where a relative TASKGATE_CONFIG or TASKS_DIR, and the project's config file, are found. */
  cwd?: string;
  /**
   * A credential that is weak or the same as another is refused (the default), or, for `doctor`,
   * kept and its problem listed in `credentialProblems`: a diagnostic reports what it finds.
   */
  credentials?: 'refuse' | 'report';
}

/**
 * The only reader of the environment. Validates every variable and throws a ConfigError whose
 * one-line message names the variable and what is wrong with it.
 */
export function loadConfig(env: NodeJS.ProcessEnv, options: LoadConfigOptions = {}): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = issue.path.join('.');
    throw new ConfigError(`${variable} ${issue.message.replace(/^Invalid input: /, '')}`);
  }
  const vars = parsed.data;
  const production = vars.NODE_ENV === 'production';
  if (production && !vars.DATABASE_URL && options.requireDatabase !== false) {
    throw new ConfigError(
      'DATABASE_URL is required in production (embedded PostgreSQL is for development only)',
    );
  }
  if (production && !vars.CRON_SECRET_KEY && options.requireSecret !== false) {
    throw new ConfigError(`CRON_SECRET_KEY is required in production: set a random one (${HOW_TO_MAKE_ONE})`);
  }
  const problems = credentialProblems(vars);
  if (problems.length > 0 && options.credentials !== 'report') throw new ConfigError(problems[0]!);
  return settings(vars, env, options, problems);
}

/** `HEARTBEAT_URL_<TASK>` variables, by task name. */
function heartbeatUrls(env: NodeJS.ProcessEnv): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(HEARTBEAT_PREFIX) || value === undefined || value.trim() === '') continue;
    const task = name.slice(HEARTBEAT_PREFIX.length);
    if (!/^[A-Z0-9_]+$/.test(task)) {
      throw new ConfigError(`${name} must be ${HEARTBEAT_PREFIX} followed by a task name in capitals`);
    }
    const url = httpUrl.safeParse(value);
    if (!url.success) throw new ConfigError(`${name} must be an http:// or https:// URL`);
    urls[task.toLowerCase()] = url.data!;
  }
  return urls;
}

/** The checked variables as the rest of taskgate reads them; its return type is `Config`. */
function settings(
  vars: Variables,
  env: NodeJS.ProcessEnv,
  options: LoadConfigOptions,
  credentialProblems: readonly string[],
) {
  const production = vars.NODE_ENV === 'production';
  let secretGenerated = false;
  let current = vars.CRON_SECRET_KEY;
  if (!current && options.generateSecret) {
    current = options.generateSecret();
    secretGenerated = true;
  }
  const cwd = options.cwd ?? process.cwd();
  const project = loadProject({ configPath: vars.TASKGATE_CONFIG, cwd });
  if (vars.TASKS_DIR) project.tasksDir = path.resolve(cwd, vars.TASKS_DIR);
  return {
    env: vars.NODE_ENV ?? 'development',
    /** Unset outside production means: run an embedded PostgreSQL. */
    databaseUrl: vars.DATABASE_URL,
    /** Secrets accepted by the HTTP face, current first. Empty means every request is refused. */
    secrets: [current, vars.CRON_SECRET_KEY_PREVIOUS].filter((s): s is string => Boolean(s)),
    /** True when the secret was generated at start because none was configured (never in production). */
    secretGenerated,
    /** What is wrong with the credentials (see credentialProblems): empty unless asked to report. */
    credentialProblems,
    port: vars.PORT,
    host: vars.HOST ?? (production ? '0.0.0.0' : '127.0.0.1'),
    logLevel: vars.LOG_LEVEL ?? options.defaultLogLevel ?? 'info',
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS,
    /**
     * The project: its taskgate.config.json (TASKGATE_CONFIG, or the working folder's), the built-in
     * tasks it chooses, and its own tasks folder (TASKS_DIR when set).
     */
    project,
    /**
     * The environment as it was read, for the tasks' own settings (`settings` in a task's
     * definition), which are checked when the tasks load.
     */
    environment: Object.freeze({ ...env }) as Readonly<Record<string, string | undefined>>,
    /** How taskgate uses its database connections (see docs/guarantees.md). */
    database: {
      /** Most connections taskgate's pool opens. */
      poolMax: vars.DATABASE_POOL_MAX,
      /** Deadline of one statement or transaction taskgate makes (tasks may ask for their own). */
      queryTimeoutMs: vars.DATABASE_QUERY_TIMEOUT_MS,
      /** Deadline of opening one connection. */
      connectTimeoutMs: vars.DATABASE_CONNECT_TIMEOUT_MS,
      /** How long start-up keeps trying an unreachable database before giving up. */
      startupTimeoutMs: vars.DATABASE_STARTUP_TIMEOUT_MS,
    },
    /** How long a run's lease lasts without renewal: the bound after which a dead process's task is free. */
    runLeaseMs: vars.RUN_LEASE_MS,
    /** The HTTP face's settings (see .env.sample for what each is for). */
    http: {
      /** Proxies trusted to append the caller's address to X-Forwarded-For; 0 uses the socket address. */
      trustProxyHops: vars.TRUST_PROXY,
      /** When set, GET /metrics asks for it as a bearer token. */
      metricsToken: vars.METRICS_TOKEN,
      /** The status page's read-only credential (the secrets are its write credential). */
      statusToken: vars.STATUS_TOKEN,
      /** How long a synchronous trigger waits for its run before answering 202 instead. */
      syncWaitMs: vars.SYNC_WAIT_MS,
      /** How far a signed request's timestamp may be from now, either way. */
      signatureToleranceSeconds: vars.SIGNATURE_TOLERANCE_SECONDS,
      /** Failed authentications one address may make per window before it gets 429. */
      authFailureLimit: vars.AUTH_FAILURE_LIMIT,
      authFailureWindowSeconds: vars.AUTH_FAILURE_WINDOW_SECONDS,
      /** Whether `GET /cron/:task` runs the task (Vercel Cron calls GET, with a bearer token). */
      allowGetTriggers: vars.ALLOW_GET_TRIGGERS,
      /** Upstash QStash's signing keys and the address it calls; null refuses every QStash request. */
      qstash: qstashConfig(vars),
    },
    /** Missed-run alarms, heartbeats, and the remote taskgate the CLI's `trigger` and `status` call. */
    scheduling: {
      /** Where failure and overdue alerts are posted as JSON (Slack-compatible `text`); unset: no alerts. */
      alertWebhookUrl: vars.ALERT_WEBHOOK_URL,
      /** How often `serve` looks for overdue tasks (ms); 0 never looks. */
      overdueCheckMs: vars.OVERDUE_CHECK_INTERVAL_MS,
      /** Ping URLs by task name (Healthchecks.io style: `/start`, success, `/fail`). */
      heartbeatUrls: heartbeatUrls(env),
      /** The base URL of a remote taskgate (TASKGATE_URL). */
      remoteUrl: vars.TASKGATE_URL,
      /** Whether `serve` fires each task's slots itself (INTERNAL_CLOCK; src/core/clock.ts). */
      internalClock: vars.INTERNAL_CLOCK,
    },
  };
}
