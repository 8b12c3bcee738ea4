import { TaskgateError } from '../errors.js';
import type { RegisteredTask } from './registry.js';
import type { RunRecord } from './runs.js';

// What a run request must be before the runner starts anything: params that fit the task's
// schema, and an idempotency key that stands for one request.

/** JSON with keys sorted, so two params objects compare by content. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** An idempotency key stands for one request: reusing it for other params or dry-run flag is refused. */
export function checkSameRequest(earlier: RunRecord, params: Record<string, unknown>, dryRun: boolean): void {
  if (earlier.dryRun === dryRun && canonical(earlier.params) === canonical(params)) return;
  throw new TaskgateError(
    'IDEMPOTENCY_KEY_REUSED',
    `this Idempotency-Key was used for a different request to ${earlier.task} (other params or dryRun): use a new key`,
    { runId: earlier.id },
  );
}

/** The params with defaults applied, or INVALID_PARAMS naming each bad field and listing the valid keys. */
export function validateParams(task: RegisteredTask, raw: unknown): Record<string, unknown> {
  const parsed = task.params.safeParse(raw ?? {});
  if (parsed.success) return parsed.data as Record<string, unknown>;
  const errors = parsed.error.issues.map((issue) => ({
    field: [...issue.path, ...('keys' in issue ? [issue.keys.join(',')] : [])].join('.') || null,
    message: issue.message,
  }));
  const listed = errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join('; ');
  throw new TaskgateError('INVALID_PARAMS', `invalid params for ${task.definition.name}: ${listed}`, {
    errors,
    validKeys: Object.keys(task.params.shape),
  });
}
