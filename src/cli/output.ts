import { runOutcomeError } from '../core/outcome.js';
import type { RunRecord } from '../core/runs.js';
import { isTaskgateError } from '../errors.js';

/** Everything the CLI prints goes through here: JSON for machines, short lines for people. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLine(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function printError(error: unknown, json: boolean): void {
  if (json) {
    const body = isTaskgateError(error)
      ? { status: 'error', code: error.code, message: error.message, ...error.details }
      : { status: 'error', code: 'INTERNAL', message: (error as Error)?.message ?? String(error) };
    printJson(body);
    return;
  }
  const message = (error as Error)?.message ?? String(error);
  process.stderr.write(`taskgate: ${message}\n`);
  if (isTaskgateError(error) && Array.isArray(error.details.validKeys)) {
    process.stderr.write(`valid params: ${error.details.validKeys.join(', ') || '(none)'}\n`);
  }
}

export function describeRun(run: RunRecord): string {
  const took = run.durationMs === null ? '' : ` in ${run.durationMs} ms`;
  const dry = run.dryRun ? ' (dry run)' : '';
  const lines = [`${run.task} ${run.status}${took}${dry} — run ${run.id}`];
  if (run.result !== null && run.result !== undefined) lines.push(`result: ${JSON.stringify(run.result)}`);
  if (run.error) lines.push(`error: ${run.error}`);
  return lines.join('\n');
}

/** Left-aligned columns, for `list` and `runs`. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * A run this command started, told as `run` tells it: the record in JSON (`--json`), else one line
 * (with `extra` after it) or the error; the exit code is the outcome's.
 */
export function reportRun(run: RunRecord, json: boolean, extra?: string): void {
  const error = runOutcomeError(run);
  if (json) printJson(run);
  else if (!error) printLine(extra ? `${describeRun(run)}\n${extra}` : describeRun(run));
  if (error) {
    if (!json) printError(error, false);
    process.exitCode = error.exitCode;
  }
}
