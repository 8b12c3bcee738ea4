/**
 * One error model for taskgate. Tasks and the runner throw a TaskgateError with a stable code;
 * the HTTP face maps the code to a status (src/http/errors.ts) and the CLI to an exit code
 * (src/cli/exit.ts). Nothing else decides a status or an exit code.
 */
export const ERROR_CODES = {
  UNAUTHORIZED: { status: 401, exitCode: 2 },
  TOO_MANY_REQUESTS: { status: 429, exitCode: 75 },
  TASK_NOT_FOUND: { status: 404, exitCode: 2 },
  RUN_NOT_FOUND: { status: 404, exitCode: 2 },
  NOT_FOUND: { status: 404, exitCode: 2 },
  INVALID_PARAMS: { status: 400, exitCode: 2 },
  INVALID_JSON: { status: 400, exitCode: 2 },
  BAD_REQUEST: { status: 400, exitCode: 2 },
  PAYLOAD_TOO_LARGE: { status: 413, exitCode: 2 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exitCode: 2 },
  METHOD_NOT_ALLOWED: { status: 405, exitCode: 2 },
  TASK_BUSY: { status: 409, exitCode: 75 },
  /** An operator paused the task: no run starts until it is resumed or its pause ends. */
  TASK_PAUSED: { status: 423, exitCode: 75 },
  /** The run has already ended (its status is in the answer): it cannot be cancelled. */
  RUN_ENDED: { status: 409, exitCode: 2 },
  /** An operator cancelled the run before it finished. */
  TASK_CANCELLED: { status: 409, exitCode: 1 },
  IDEMPOTENCY_KEY_REUSED: { status: 422, exitCode: 2 },
  TASK_FAILED: { status: 500, exitCode: 1 },
  TASK_INTERRUPTED: { status: 500, exitCode: 1 },
  SHUTTING_DOWN: { status: 503, exitCode: 75 },
  DATABASE_UNAVAILABLE: { status: 503, exitCode: 1 },
  INVALID_TASK: { status: 500, exitCode: 1 },
  INTERNAL: { status: 500, exitCode: 1 },
  /** The CLI's trigger gave up on a remote taskgate that never answered (taskgate itself never sends it). */
  UNREACHABLE: { status: 502, exitCode: 1 },
} as const satisfies Record<string, { status: number; exitCode: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class TaskgateError extends Error {
  override name = 'TaskgateError';
  readonly code: ErrorCode;
  /** Extra fields that reach the client with the message (never secrets, never stack traces). */
  readonly details: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    details: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exitCode;
  }

  /** Client errors are told as they are; server errors keep their text to the log. */
  get expose(): boolean {
    return this.status < 500 || this.code === 'TASK_FAILED' || this.code === 'TASK_INTERRUPTED';
  }
}

export function isTaskgateError(error: unknown): error is TaskgateError {
  return error instanceof TaskgateError;
}
