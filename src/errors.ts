/**
 * One error model for taskgate. Tasks and the runner throw a TaskgateError with a stable code;
 * this table says, for each code, the HTTP status, the CLI's exit code, and whether the message
 * may reach a client (`expose`; otherwise it stays in the log). The HTTP face (src/http/errors.ts)
 * and the CLI (src/cli/exit.ts) read it; nothing else decides a status or an exit code.
 */
export const ERROR_CODES = {
  UNAUTHORIZED: { status: 401, exitCode: 2, expose: true },
  /** The credential is good but may not do this (the status page's read-only token, a cross-site form). */
  FORBIDDEN: { status: 403, exitCode: 2, expose: true },
  TOO_MANY_REQUESTS: { status: 429, exitCode: 75, expose: true },
  TASK_NOT_FOUND: { status: 404, exitCode: 2, expose: true },
  RUN_NOT_FOUND: { status: 404, exitCode: 2, expose: true },
  NOT_FOUND: { status: 404, exitCode: 2, expose: true },
  INVALID_PARAMS: { status: 400, exitCode: 2, expose: true },
  INVALID_JSON: { status: 400, exitCode: 2, expose: true },
  BAD_REQUEST: { status: 400, exitCode: 2, expose: true },
  PAYLOAD_TOO_LARGE: { status: 413, exitCode: 2, expose: true },
  HEADERS_TOO_LARGE: { status: 431, exitCode: 2, expose: true },
  REQUEST_TIMEOUT: { status: 408, exitCode: 2, expose: true },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exitCode: 2, expose: true },
  METHOD_NOT_ALLOWED: { status: 405, exitCode: 2, expose: true },
  TASK_BUSY: { status: 409, exitCode: 75, expose: true },
  /** An operator paused the task: no run starts until it is resumed or its pause ends. */
  TASK_PAUSED: { status: 423, exitCode: 75, expose: true },
  /** The run has already ended (its status is in the answer): it cannot be cancelled. */
  RUN_ENDED: { status: 409, exitCode: 2, expose: true },
  /** An operator cancelled the run before it finished. */
  TASK_CANCELLED: { status: 409, exitCode: 1, expose: true },
  IDEMPOTENCY_KEY_REUSED: { status: 422, exitCode: 2, expose: true },
  TASK_FAILED: { status: 500, exitCode: 1, expose: true },
  TASK_INTERRUPTED: { status: 500, exitCode: 1, expose: true },
  SHUTTING_DOWN: { status: 503, exitCode: 75, expose: true },
  DATABASE_UNAVAILABLE: { status: 503, exitCode: 1, expose: true },
  INVALID_TASK: { status: 500, exitCode: 1, expose: false },
  /** A setting in the environment is missing or wrong (the message names the variable). */
  CONFIG_INVALID: { status: 500, exitCode: 1, expose: false },
  INTERNAL: { status: 500, exitCode: 1, expose: false },
  /** `taskgate build`: a type error (the message names each file and line) or a task that does not load. */
  BUILD_FAILED: { status: 500, exitCode: 1, expose: false },
  /** `taskgate init` would overwrite files that exist (the message lists them). */
  INIT_CONFLICT: { status: 409, exitCode: 2, expose: true },
  /** The CLI's trigger gave up on a remote taskgate that never answered (taskgate itself never sends it). */
  UNREACHABLE: { status: 502, exitCode: 1, expose: true },
} as const satisfies Record<string, { status: number; exitCode: number; expose: boolean }>;

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

  /** Whether the message may reach a client; when not, it stays in the log. */
  get expose(): boolean {
    return ERROR_CODES[this.code].expose;
  }
}

export function isTaskgateError(error: unknown): error is TaskgateError {
  return error instanceof TaskgateError;
}
