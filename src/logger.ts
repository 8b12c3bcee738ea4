import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

/**
 * Paths pino replaces with "[redacted]" wherever they appear in a log line: request headers
 * that carry credentials and any field named like a secret.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-cron-secret"]',
  'req.headers["x-cron-signature"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-cron-secret"]',
  'headers["x-cron-signature"]',
  'secret',
  'secrets',
  'password',
  'databaseUrl',
  'config.secrets',
  'config.databaseUrl',
  'metricsToken',
  'config.http.metricsToken',
  '*.secret',
  '*.password',
];

export interface LoggerOptions {
  level: string;
  /** JSON lines (production, tests) or colourised lines for a person at a terminal. */
  pretty: boolean;
  /** A file descriptor (1: stdout, 2: stderr), or a stream tests read log lines from. */
  destination?: number | DestinationStream;
}

export function createLogger({ level, pretty, destination = 1 }: LoggerOptions): Logger {
  const options = {
    level,
    base: undefined,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (typeof destination !== 'number') return pino(options, destination);
  if (pretty) {
    return pino({
      ...options,
      transport: {
        target: 'pino-pretty',
        options: { destination, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return pino(options, pino.destination({ dest: destination, sync: true }));
}
