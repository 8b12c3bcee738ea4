import type { Argv } from 'yargs';
import { TaskgateError } from '../errors.js';

/**
 * Builds a task's raw params from `--params '{"a":1}'` and `--param a=1` (repeatable; the value
 * is read as JSON when it is JSON, else as a string). Validation is the runner's job.
 */
export function parseParams(
  params: string | undefined,
  pairs: string[] | undefined,
): Record<string, unknown> {
  let raw: Record<string, unknown> = {};
  if (params !== undefined) {
    try {
      raw = JSON.parse(params);
    } catch {
      throw new TaskgateError('INVALID_PARAMS', '--params must be a JSON object');
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new TaskgateError('INVALID_PARAMS', '--params must be a JSON object');
    }
  }
  for (const pair of pairs ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new TaskgateError('INVALID_PARAMS', `--param "${pair}" must look like key=value`);
    const key = pair.slice(0, at);
    const text = pair.slice(at + 1);
    let value: unknown = text;
    try {
      value = JSON.parse(text);
    } catch {
      // a plain string
    }
    raw[key] = value;
  }
  return raw;
}

/** The options `run` and `trigger` share: a task's params and a dry run. */
export function taskInputOptions<T>(y: Argv<T>) {
  return y
    .option('param', { type: 'string', array: true, describe: 'a parameter, key=value (repeatable)' })
    .option('params', { type: 'string', describe: 'parameters as one JSON object' })
    .option('dry-run', {
      type: 'boolean',
      default: false,
      describe: 'report what would be done, change nothing',
    });
}
