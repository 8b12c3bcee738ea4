import { createRequire } from 'node:module';
import slowRedact from '@pinojs/redact';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log line: request headers
 * that carry credentials and any field named like a secret.
 */
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-cron-secret"]',
  'req.headers["x-cron-signature"]',
  'req.headers["upstash-signature"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-cron-secret"]',
  'headers["x-cron-signature"]',
  'headers["upstash-signature"]',
  'secret',
  'secrets',
  'password',
  'databaseUrl',
  'config.secrets',
  'config.databaseUrl',
  'metricsToken',
  'config.http.metricsToken',
  'statusToken',
  'config.http.statusToken',
  'config.http.qstash',
  'currentSigningKey',
  'nextSigningKey',
  '*.secret',
  '*.password',
];

const CENSOR = '[redacted]';

const redactor = slowRedact({ paths: REDACTED_PATHS, censor: CENSOR, strict: false });

/**
 * `value` with the fields the log redacts replaced by "[redacted]" (the same paths, the same
 * library pino uses), for what is shown outside the log: a run's params and result on the status
 * page. The value itself is left unchanged.
 */
export function redactFields<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  return JSON.parse(redactor(value) as string) as T;
}

export interface LoggerOptions {
  level: string;
  /** JSON lines (production, tests) or colourised lines for a person at a terminal. */
  pretty: boolean;
  /** A file descriptor (1: stdout, 2: stderr), or a stream tests read log lines from. */
  destination?: number | DestinationStream;
}

const baseOptions = (level: string) => ({
  level,
  base: undefined,
  redact: { paths: REDACTED_PATHS, censor: CENSOR },
});

export function createLogger({ level, pretty, destination = 1 }: LoggerOptions): Logger {
  const options = baseOptions(level);
  if (typeof destination !== 'number') return pino(options, destination);
  if (pretty) {
    // In this process and synchronous, like the JSON lines: no worker thread to start, and no line
    // left unwritten when a command exits. Loaded only for a person at a terminal.
    const build = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    return pino(
      options,
      build({ destination, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }),
    );
  }
  return pino(options, pino.destination({ dest: destination, sync: true }));
}

/** The least a run's own log keeps, whatever the process logs: its info lines and up. */
const RUN_LOG_LEVEL = 'info';

/**
 * A run's logger: writes what `parent` would (same destination, level and redaction, with
 * `bindings` on every line) and also hands every line from RUN_LOG_LEVEL up to `capture`, so
 * the lines kept with the run are the very lines of the log, redacted once.
 */
export function createRunLogger(
  parent: Logger,
  bindings: Record<string, unknown>,
  capture: { write(line: string): void },
): Logger {
  const parentStream = (parent as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym];
  const captureLevel = Math.min(parent.levelVal, pino.levels.values[RUN_LOG_LEVEL]!);
  const streams: { level: number; stream: DestinationStream }[] = [{ level: captureLevel, stream: capture }];
  if (parentStream && Number.isFinite(parent.levelVal)) {
    streams.push({ level: parent.levelVal, stream: parentStream });
  }
  const level = pino.levels.labels[captureLevel] ?? RUN_LOG_LEVEL;
  return pino(baseOptions(level), pino.multistream(streams)).child({ ...parent.bindings(), ...bindings });
}
