import path from 'node:path';
import { z } from 'zod';
import { TaskgateError } from './errors.js';
import { loadProject, type Project } from './projectFile.js';

import {
  HOW_TO_MAKE_ONE,
  MIN_SECRET_BITS,
  MIN_SECRET_LENGTH,
  qstashKeyWeakness,
  SECRET_PLACEHOLDER,
  secretWeakness,
} from './secretStrength.js';

export { MIN_SECRET_LENGTH, SECRET_PLACEHOLDER };

/**
 * METRICS_TOKEN and STATUS_TOKEN only let their holder read: half a shared secret's strength will
 * do. QStash signing keys are held to it too: Upstash makes them of `sig_` and about 28 random
 * characters (some 160 bits), so the floor only stops a key someone typed.
 */
const MIN_METRICS_TOKEN_BITS = 64;

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const integer = (fallback: number, min: number, max: number) =>
  z
    .string()
    .optional()
    .transform((value) => (value === undefined || value.trim() === '' ? String(fallback) : value.trim()))
    .pipe(z.string().regex(/^\d+$/, 'must be a whole number'))
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const secret = optionalText.refine(
  (value) => value === undefined || value.length >= MIN_SECRET_LENGTH,
  `must be at least ${MIN_SECRET_LENGTH} characters (${HOW_TO_MAKE_ONE})`,
);

/** How many proxies in front of taskgate append to X-Forwarded-For; 0 trusts none. */
const proxyHops = optionalText
  .transform((value) => (value === undefined || value === 'false' || value === 'off' ? '0' : value))
  .pipe(
    z
      .string()
      .regex(/^\d+$/, 'must be the number of proxies in front of taskgate (0: none; on Render: 2), not true')
      .transform(Number)
      .pipe(z.number().int().min(0).max(10)),
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

const schema = z.object({
  NODE_ENV: optionalText.pipe(z.enum(['development', 'production', 'test']).optional()),
  DATABASE_URL: optionalText.pipe(
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
  ),
  CRON_SECRET_KEY: secret,
  CRON_SECRET_KEY_PREVIOUS: secret,
  TRUST_PROXY: proxyHops,
  METRICS_TOKEN: optionalText.refine(
    (value) => value === undefined || value.length >= 16,
    `must be at least 16 characters (${HOW_TO_MAKE_ONE})`,
  ),
  STATUS_TOKEN: optionalText.refine(
    (value) => value === undefined || value.length >= 16,
    `must be at least 16 characters (${HOW_TO_MAKE_ONE})`,
  ),
  SYNC_WAIT_MS: integer(25_000, 0, 600_000),
  SIGNATURE_TOLERANCE_SECONDS: integer(300, 1, 3_600),
  AUTH_FAILURE_LIMIT: integer(10, 1, 1_000_000_000),
  AUTH_FAILURE_WINDOW_SECONDS: integer(900, 1, 86_400),
  PORT: integer(3000, 0, 65535),
  HOST: optionalText,
  LOG_LEVEL: optionalText.pipe(
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  ),
  SHUTDOWN_GRACE_MS: integer(20_000, 0, 600_000),
  // Two at least: a run's lease is renewed on a connection of its own while tasks hold theirs.
  DATABASE_POOL_MAX: integer(10, 2, 1_000),
  DATABASE_QUERY_TIMEOUT_MS: integer(5_000, 100, 3_600_000),
  DATABASE_CONNECT_TIMEOUT_MS: integer(5_000, 100, 600_000),
  DATABASE_STARTUP_TIMEOUT_MS: integer(60_000, 0, 3_600_000),
  RUN_LEASE_MS: integer(30_000, 1_000, 3_600_000),
  TASKGATE_CONFIG: optionalText,
  TASKS_DIR: optionalText,
  ALERT_WEBHOOK_URL: httpUrl,
  OVERDUE_CHECK_INTERVAL_MS: integer(300_000, 0, 86_400_000),
  TASKGATE_URL: httpUrl,
  ALLOW_GET_TRIGGERS: flag(false),
  QSTASH_CURRENT_SIGNING_KEY: optionalText,
  QSTASH_NEXT_SIGNING_KEY: optionalText,
  PUBLIC_URL: httpUrl,
  // Render sets it to the service's public address: PUBLIC_URL's default there.
  RENDER_EXTERNAL_URL: httpUrl,
});

/**
 * Every environment variable loadConfig reads by name (besides the HEARTBEAT_PREFIX family): what
 * the README, .env.sample, render.yaml, the Dockerfile and docker-compose.yml may mention.
 */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

export interface Config {
  env: 'development' | 'production' | 'test';
  /** Unset outside production means: run an embedded PostgreSQL. */
  databaseUrl: string | undefined;
  /** Secrets accepted by the HTTP face, current first. Empty means every request is refused. */
  secrets: string[];
  /** True when the secret was generated at start because none was configured (never in production). */
  secretGenerated: boolean;
  port: number;
  host: string;
  logLevel: string;
  shutdownGraceMs: number;
  /**
   * The project: its taskgate.config.json (TASKGATE_CONFIG, or the working folder's), the built-in
   * tasks it chooses, and its own tasks folder (TASKS_DIR when set).
   */
  project: Project;
  /**
   * The environment as it was read, for the tasks' own settings (`settings` in a task's
   * definition), which are checked when the tasks load.
   */
  environment: Readonly<Record<string, string | undefined>>;
  database: DatabaseConfig;
  /** How long a run's lease lasts without renewal: the bound after which a dead process's task is free. */
  runLeaseMs: number;
  http: HttpConfig;
  scheduling: SchedulingConfig;
}

/** How taskgate uses its database connections (see README, Coordination). */
export interface DatabaseConfig {
  /** Most connections taskgate's pool opens. */
  poolMax: number;
  /** Deadline of one statement or transaction taskgate makes (tasks may ask for their own). */
  queryTimeoutMs: number;
  /** Deadline of opening one connection. */
  connectTimeoutMs: number;
  /** How long start-up keeps trying an unreachable database before giving up. */
  startupTimeoutMs: number;
}

/** Missed-run alarms, heartbeats, and the remote taskgate the CLI's `trigger` and `status` call. */
export interface SchedulingConfig {
  /** Where failure and overdue alerts are posted as JSON (Slack-compatible `text`); unset: no alerts. */
  alertWebhookUrl: string | undefined;
  /** How often `serve` looks for overdue tasks (ms); 0 never looks. */
  overdueCheckMs: number;
  /** Ping URLs by task name (Healthchecks.io style: `/start`, success, `/fail`). */
  heartbeatUrls: Record<string, string>;
  /** The base URL of a remote taskgate (TASKGATE_URL). */
  remoteUrl: string | undefined;
}

/** The HTTP face's settings (see .env.sample for what each is for). */
export interface HttpConfig {
  /** Proxies trusted to append the caller's address to X-Forwarded-For; 0 uses the socket address. */
  trustProxyHops: number;
  /** When set, GET /metrics asks for it as a bearer token. */
  metricsToken: string | undefined;
  /** The status page's read-only credential (the secrets are its write credential). */
  statusToken: string | undefined;
  /** How long a synchronous trigger waits for its run before answering 202 instead. */
  syncWaitMs: number;
  /** How far a signed request's timestamp may be from now, either way. */
  signatureToleranceSeconds: number;
  /** Failed authentications one address may make per window before it gets 429. */
  authFailureLimit: number;
  authFailureWindowSeconds: number;
  /** Whether `GET /cron/:task` runs the task (Vercel Cron calls GET, with a bearer token). */
  allowGetTriggers: boolean;
  /** Upstash QStash's signing keys and the address it calls; null refuses every QStash request. */
  qstash: QstashConfig | null;
}

export interface QstashConfig {
  currentSigningKey: string;
  nextSigningKey: string;
  /** taskgate's public base URL (no trailing slash): a QStash signature names the URL it was sent to. */
  publicUrl: string;
}

/** QStash needs both its signing keys and the address it calls, or nothing. */
function qstashConfig(vars: {
  QSTASH_CURRENT_SIGNING_KEY?: string | undefined;
  QSTASH_NEXT_SIGNING_KEY?: string | undefined;
  PUBLIC_URL?: string | undefined;
  RENDER_EXTERNAL_URL?: string | undefined;
  CRON_SECRET_KEY?: string | undefined;
}): QstashConfig | null {
  const current = vars.QSTASH_CURRENT_SIGNING_KEY;
  const next = vars.QSTASH_NEXT_SIGNING_KEY;
  if (current === undefined && next === undefined) return null;
  if (current === undefined || next === undefined) {
    const missing = current === undefined ? 'QSTASH_CURRENT_SIGNING_KEY' : 'QSTASH_NEXT_SIGNING_KEY';
    throw new ConfigError(
      `${missing} is unset: QStash needs both its current and next signing keys (Upstash console, QStash, Signing keys)`,
    );
  }
  for (const [name, key] of [
    ['QSTASH_CURRENT_SIGNING_KEY', current],
    ['QSTASH_NEXT_SIGNING_KEY', next],
  ] as const) {
    if (key === vars.CRON_SECRET_KEY) {
      throw new ConfigError(
        `${name} is the same as CRON_SECRET_KEY: copy QStash's own key from the Upstash console`,
      );
    }
    const weakness = qstashKeyWeakness(key, MIN_METRICS_TOKEN_BITS);
    if (weakness) throw new ConfigError(`${name} ${weakness}`);
  }
  const publicUrl = vars.PUBLIC_URL ?? vars.RENDER_EXTERNAL_URL;
  if (publicUrl === undefined) {
    throw new ConfigError(
      'PUBLIC_URL is required with QStash signing keys: the https:// address QStash calls taskgate at (a signature names the URL it was sent to)',
    );
  }
  return { currentSigningKey: current, nextSigningKey: next, publicUrl: publicUrl.replace(/\/+$/, '') };
}

export class ConfigError extends TaskgateError {
  override name = 'ConfigError';
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/**
 * Refuses secrets an attacker could guess or that do two jobs: a guessable or placeholder secret
 * (secretStrength.ts), a "previous" secret that is the current one (a rotation that rotates
 * nothing), a METRICS_TOKEN or STATUS_TOKEN that is a secret (whoever scrapes metrics or reads the status
 * page could then run tasks), a STATUS_TOKEN that is the METRICS_TOKEN.
 */
function checkSecrets(vars: {
  CRON_SECRET_KEY?: string | undefined;
  CRON_SECRET_KEY_PREVIOUS?: string | undefined;
  METRICS_TOKEN?: string | undefined;
  STATUS_TOKEN?: string | undefined;
}): void {
  const secrets = ['CRON_SECRET_KEY', 'CRON_SECRET_KEY_PREVIOUS'] as const;
  for (const name of secrets) {
    const value = vars[name];
    const weakness = value === undefined ? null : secretWeakness(value, MIN_SECRET_BITS);
    if (weakness) throw new ConfigError(`${name} ${weakness}`);
  }
  if (vars.CRON_SECRET_KEY_PREVIOUS !== undefined && vars.CRON_SECRET_KEY_PREVIOUS === vars.CRON_SECRET_KEY) {
    throw new ConfigError(
      'CRON_SECRET_KEY_PREVIOUS is the same as CRON_SECRET_KEY: set it to the secret being replaced, or unset it',
    );
  }
  const tokens = [
    ['METRICS_TOKEN', '/metrics', secrets],
    ['STATUS_TOKEN', 'the status page', [...secrets, 'METRICS_TOKEN']],
  ] as const;
  for (const [variable, what, others] of tokens) {
    const token = vars[variable];
    if (token === undefined) continue;
    for (const name of others) {
      if (token === vars[name]) {
        throw new ConfigError(
          `${variable} is the same as ${name}: give ${what} a token of its own (${HOW_TO_MAKE_ONE})`,
        );
      }
    }
    const weakness = secretWeakness(token, MIN_METRICS_TOKEN_BITS);
    if (weakness) throw new ConfigError(`${variable} ${weakness}`);
  }
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
  /** Where a relative TASKGATE_CONFIG or TASKS_DIR, and the project's config file, are found. */
  cwd?: string;
}

/**
 * The only reader of the environment. Validates every variable and throws a ConfigError whose
 * one-line message names the variable and what is wrong with it.
 */
export function loadConfig(env: NodeJS.ProcessEnv, options: LoadConfigOptions = {}): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = issue.path.join('.');
    throw new ConfigError(`${variable} ${issue.message.replace(/^Invalid input: /, '')}`);
  }
  const vars = parsed.data;
  const heartbeatUrls: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(HEARTBEAT_PREFIX) || value === undefined || value.trim() === '') continue;
    const task = name.slice(HEARTBEAT_PREFIX.length);
    if (!/^[A-Z0-9_]+$/.test(task)) {
      throw new ConfigError(`${name} must be ${HEARTBEAT_PREFIX} followed by a task name in capitals`);
    }
    const url = httpUrl.safeParse(value);
    if (!url.success) throw new ConfigError(`${name} must be an http:// or https:// URL`);
    heartbeatUrls[task.toLowerCase()] = url.data!;
  }
  const nodeEnv = vars.NODE_ENV ?? 'development';
  const production = nodeEnv === 'production';

  if (production && !vars.DATABASE_URL) {
    throw new ConfigError(
      'DATABASE_URL is required in production (embedded PostgreSQL is for development only)',
    );
  }
  if (production && !vars.CRON_SECRET_KEY && options.requireSecret !== false) {
    throw new ConfigError(
      `CRON_SECRET_KEY is required in production: set a random string of at least ${MIN_SECRET_LENGTH} characters`,
    );
  }
  checkSecrets(vars);
  const qstash = qstashConfig(vars);
  const cwd = options.cwd ?? process.cwd();
  const project = loadProject({ configPath: vars.TASKGATE_CONFIG, cwd });
  if (vars.TASKS_DIR) project.tasksDir = path.resolve(cwd, vars.TASKS_DIR);

  let secretGenerated = false;
  let current = vars.CRON_SECRET_KEY;
  if (!current && options.generateSecret) {
    current = options.generateSecret();
    secretGenerated = true;
  }

  return {
    env: nodeEnv,
    databaseUrl: vars.DATABASE_URL,
    secrets: [current, vars.CRON_SECRET_KEY_PREVIOUS].filter((s): s is string => Boolean(s)),
    secretGenerated,
    port: vars.PORT,
    host: vars.HOST ?? (production ? '0.0.0.0' : '127.0.0.1'),
    logLevel: vars.LOG_LEVEL ?? options.defaultLogLevel ?? 'info',
    shutdownGraceMs: vars.SHUTDOWN_GRACE_MS,
    project,
    environment: Object.freeze({ ...env }),
    database: {
      poolMax: vars.DATABASE_POOL_MAX,
      queryTimeoutMs: vars.DATABASE_QUERY_TIMEOUT_MS,
      connectTimeoutMs: vars.DATABASE_CONNECT_TIMEOUT_MS,
      startupTimeoutMs: vars.DATABASE_STARTUP_TIMEOUT_MS,
    },
    runLeaseMs: vars.RUN_LEASE_MS,
    http: {
      trustProxyHops: vars.TRUST_PROXY,
      metricsToken: vars.METRICS_TOKEN,
      statusToken: vars.STATUS_TOKEN,
      syncWaitMs: vars.SYNC_WAIT_MS,
      signatureToleranceSeconds: vars.SIGNATURE_TOLERANCE_SECONDS,
      authFailureLimit: vars.AUTH_FAILURE_LIMIT,
      authFailureWindowSeconds: vars.AUTH_FAILURE_WINDOW_SECONDS,
      allowGetTriggers: vars.ALLOW_GET_TRIGGERS,
      qstash,
    },
    scheduling: {
      alertWebhookUrl: vars.ALERT_WEBHOOK_URL,
      overdueCheckMs: vars.OVERDUE_CHECK_INTERVAL_MS,
      heartbeatUrls,
      remoteUrl: vars.TASKGATE_URL,
    },
  };
}
