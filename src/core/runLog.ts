/**
 * What a run said: the lines its logger wrote (the task's and the runner's own lines for it),
 * exactly as they went to the log (so redacted the same way), kept with the run.
 * Bounded so that a task that logs without end costs a fixed amount of memory and of database:
 * the first RUN_LOG_MAX_LINES lines, at most RUN_LOG_MAX_BYTES in all; the rest are counted.
 *
 * While the run goes on, what it logged so far is saved with each lease renewal (a checkpoint,
 * src/core/leaseKeeper.ts), so a run whose process dies keeps its lines up to one renewal period
 * before it died; the run's end then writes the log whole (src/core/runs.ts, finishRun).
 */
import type { RunLogCheckpoint, RunLogRecord } from './runs.js';

export const RUN_LOG_MAX_LINES = 500;
export const RUN_LOG_MAX_BYTES = 64 * 1024;

/** A pino destination: `write` gets one JSON line at a time. */
export class RunLogCapture {
  private readonly lines: Record<string, unknown>[] = [];
  private bytes = 0;
  private dropped = 0;
  /** What the last checkpoint saved, so the next one is written only when the log changed. */
  private saved = { lines: 0, dropped: 0 };
  /** Set once the run's end takes the log: checkpoints stop, the end writes it whole. */
  private ended = false;

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

  /** The record kept with the run's end; no checkpoint is taken after it. */
  end(): RunLogRecord {
    this.ended = true;
    return this.record();
  }

  /**
   * What to save while the run goes on: null when nothing changed since the last checkpoint
   * saved (or the run is ending), the lines left out when only the count of dropped lines grew
   * (a log at its bound), so a chatty run does not rewrite its lines with every renewal.
   */
  checkpoint(): RunLogCheckpoint | null {
    if (this.ended) return null;
    const linesAdded = this.lines.length > this.saved.lines;
    if (!linesAdded && this.dropped === this.saved.dropped) return null;
    return {
      ...(linesAdded ? { lines: [...this.lines] } : {}),
      bytes: this.bytes,
      dropped: this.dropped,
    };
  }

  /** The checkpoint was written: the next one is taken only once the log changes again. */
  checkpointed(checkpoint: RunLogCheckpoint): void {
    this.saved = {
      lines: checkpoint.lines?.length ?? this.saved.lines,
      dropped: checkpoint.dropped,
    };
  }
}
