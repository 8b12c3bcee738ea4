import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/logger.js';

/** Every line a logger wrote, kept so that tests can read them as JSON. */
export class LogCapture extends Writable {
  readonly chunks: string[] = [];

  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.chunks.push(chunk.toString('utf8'));
    done();
  }

  get text(): string {
    return this.chunks.join('');
  }

  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  }
}

/** A logger writing JSON lines into a LogCapture, for tests that read what was logged. */
export function captureLogger(level = 'info'): {
  logger: Logger;
  lines: () => Record<string, unknown>[];
  text: () => string;
} {
  const logs = new LogCapture();
  const logger = createLogger({ level, pretty: false, destination: logs });
  return { logger, lines: () => logs.lines(), text: () => logs.text };
}
