/**
 * What a run said: the lines its logger wrote (the task's and the runner's own lines for it),
 * exactly as they went to the log (so redacted the same way), kept with the run's end.
 * Bounded so that a task that logs without end costs a fixed amount of memory and of database:
 * the first RUN_LOG_MAX_LINES lines, at most RUN_LOG_MAX_BYTES in all; the rest are counted.
 */
import type { RunLogRecord } from './runs.js';

export const RUN_LOG_MAX_LINES = 500;
export const RUN_LOG_MAX_BYTES = 64 * 1024;

/** A pino destination: `write` gets one JSON line at a time. */
export class RunLogCapture {
  private readonly lines: Record<string, unknown>[] = [];
  private bytes = 0;
  private dropped = 0;

  write(line: string): void {
    const size = Buffer.byteLength(line);
    if (this.lines.length >= RUN_LOG_MAX_LINES || this.bytes + size > RUN_LOG_MAX_BYTES) {
      this.dropped += 1;
      return;
    }
    try {
      this.lines.push(JSON.parse(line));
      this.bytes += size;
    } catch {
      this.dropped += 1;
    }
  }

  record(): RunLogRecord {
    return { lines: [...this.lines], bytes: this.bytes, dropped: this.dropped };
  }
}
