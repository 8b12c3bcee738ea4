/**
 * taskgate's public API, for the task modules of a project that depends on taskgate:
 *
 *     import { defineTask, z } from 'taskgate';
 *
 * `z` is the zod that taskgate checks params and settings with (a task may import its own zod 4
 * as well). Everything else a task needs reaches it through its `run(ctx)` (see TaskContext).
 */
export { z } from 'zod';
export type { Sql, SqlClient, TransactionOptions } from './db/sql.js';
export type {
  CheckContext,
  CheckResult,
  Json,
  LogMethod,
  TaskContext,
  TaskDefinition,
  TaskLogger,
} from './task.js';
export { defineTask, TaskFailure } from './task.js';
