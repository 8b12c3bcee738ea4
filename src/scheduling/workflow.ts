import { createRequire } from 'node:module';
import type { RegisteredTask } from '../core/registry.js';
import { DEFAULT_RETRY_DELAY_MS, DEFAULT_WAKE_TIMEOUT_MS, TRANSIENT_STATUSES } from '../remote/wakePolicy.js';
import { DEFAULT_TIMEOUT_MS } from '../task.js';
import { stepScript } from './scripts.js';

/**
 * The GitHub Actions workflow that schedules taskgate's tasks, generated from the registry so
 * that adding a task module and regenerating is all it takes to schedule it.
 *
 * Shape: one `schedule` entry per distinct cron; a `plan` job turns the cron that fired (or the
 * `workflow_dispatch` input) into a JSON list of task names; a `run` matrix job over that list
 * wakes the host and calls `POST /cron/<task>`; a `keepalive` job stops GitHub from disabling
 * the schedule after 60 days without commits. Expressions only ever reach scripts through `env`,
 * never inside `run:` text, so no input can inject shell code. The scripts are the files in
 * src/scheduling/scripts/; what they take from taskgate (the schedule table, time-outs, which
 * answers to retry) is in their `env:` too.
 */

/** Where the generated workflow lives in the repository. */
export const WORKFLOW_PATH = '.github/workflows/taskgate.yml';
const WORKFLOW_FILE = WORKFLOW_PATH.split('/').pop()!;

/** The tasks of each distinct cron expression, in the order the crons first appear. */
export function scheduleTable(tasks: RegisteredTask[]): Map<string, string[]> {
  const table = new Map<string, string[]>();
  for (const task of tasks) {
    if (!task.schedule) continue;
    const names = table.get(task.schedule.expression) ?? [];
    names.push(task.definition.name);
    table.set(task.schedule.expression, names);
  }
  return table;
}

/** A GitHub Actions expression, `${{ ... }}`. */
const expr = (expression: string) => `\${{ ${expression} }}`;

/** The workflow's text for these tasks (the registry's `list()`). Pure: same tasks, same text. */
export function generateWorkflow(tasks: RegisteredTask[]): string {
  if (tasks.length === 0) throw new Error('there are no tasks to schedule');
  const table = scheduleTable(tasks);
  const names = tasks.map((t) => t.definition.name);
  const longestTimeoutMs = Math.max(...tasks.map((t) => t.definition.timeoutMs ?? DEFAULT_TIMEOUT_MS));
  // A sync POST lasts as long as the run; past this the server answers 202 and the step polls.
  const requestTimeoutS = Math.ceil(longestTimeoutMs / 1000) + 120;
  const wakeTimeoutS = DEFAULT_WAKE_TIMEOUT_MS / 1000;
  const jobMinutes = Math.ceil((requestTimeoutS * 2 + wakeTimeoutS * 2) / 60) + 5;

  const on: Record<string, unknown> = {};
  if (table.size > 0) on.schedule = [...table.keys()].map((cron) => ({ cron }));
  on.workflow_dispatch = {
    inputs: {
      task: { description: 'Task to run', type: 'choice', required: true, options: names },
      dry_run: { description: 'Report what would be done, change nothing', type: 'boolean', default: false },
      params: { description: 'Parameters as a JSON object', type: 'string', required: false, default: '{}' },
    },
  };

  const workflow = {
    name: 'taskgate',
    'run-name': `taskgate ${expr('inputs.task || github.event.schedule')}${expr("inputs.dry_run && ' (dry run)' || ''")}`,
    on,
    permissions: {},
    defaults: { run: { shell: 'bash' } },
    jobs: {
      plan: {
        name: 'Pick the tasks',
        'runs-on': 'ubuntu-latest',
        'timeout-minutes': 5,
        outputs: { tasks: expr('steps.pick.outputs.tasks') },
        steps: [
          {
            id: 'pick',
            name: 'Map the trigger to tasks',
            env: {
              EVENT_NAME: expr('github.event_name'),
              SCHEDULE: expr('github.event.schedule'),
              TASK: expr('inputs.task'),
              SCHEDULES: JSON.stringify(Object.fromEntries(table)),
            },
            run: stepScript('plan'),
          },
        ],
      },
      run: {
        name: expr('matrix.task'),
        needs: 'plan',
        'runs-on': 'ubuntu-latest',
        'timeout-minutes': jobMinutes,
        strategy: { 'fail-fast': false, matrix: { task: expr('fromJSON(needs.plan.outputs.tasks)') } },
        concurrency: { group: `taskgate-${expr('matrix.task')}`, 'cancel-in-progress': false },
        env: {
          TASKGATE_URL: expr('vars.TASKGATE_URL || secrets.TASKGATE_URL'),
          WAKE_TIMEOUT: expr(`vars.TASKGATE_WAKE_TIMEOUT || '${wakeTimeoutS}'`),
          RETRY_DELAY: expr(`vars.TASKGATE_RETRY_DELAY || '${DEFAULT_RETRY_DELAY_MS / 1000}'`),
        },
        steps: [
          { name: 'Wake the host', run: stepScript('wake') },
          {
            name: `Run ${expr('matrix.task')}`,
            env: {
              TASK: expr('matrix.task'),
              CRON_SECRET_KEY: expr('secrets.CRON_SECRET_KEY'),
              DRY_RUN: expr('inputs.dry_run == true'),
              PARAMS: expr("inputs.params || '{}'"),
              IDEMPOTENCY_KEY: `${expr('github.run_id')}-${expr('github.run_attempt')}-${expr('matrix.task')}`,
              REQUEST_TIMEOUT: String(requestTimeoutS),
              // 000 is curl's code for no answer at all (refused, reset, timed out).
              TRANSIENT_STATUSES: ['000', ...TRANSIENT_STATUSES].join(' '),
            },
            run: stepScript('trigger'),
          },
        ],
      },
      keepalive: {
        name: 'Keep the schedule enabled',
        if: "github.event_name == 'schedule'",
        'runs-on': 'ubuntu-latest',
        'timeout-minutes': 5,
        'continue-on-error': true,
        permissions: { actions: 'write' },
        steps: [
          {
            name: 'Re-enable this workflow',
            env: { GH_TOKEN: expr('github.token'), WORKFLOW_FILE },
            run: stepScript('keepalive'),
          },
        ],
      },
    },
  };

  // yaml is loaded by the one command that writes YAML, not by every command that imports this file.
  const { Document } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  const doc = new Document(workflow);
  doc.commentBefore = [
    ' Generated by `taskgate workflow` from the task modules in tasks/: do not edit by hand.',
    ' After adding or changing a task, run: npm run -s taskgate -- workflow --write',
    ' Needs the repository secret CRON_SECRET_KEY and the variable (or secret) TASKGATE_URL.',
  ].join('\n');
  (on.schedule as unknown[] | undefined)?.forEach((_, i) => {
    const node = doc.getIn(['on', 'schedule', i, 'cron'], true) as { comment?: string; type?: string };
    const cron = [...table.keys()][i]!;
    node.type = 'QUOTE_DOUBLE';
    node.comment = ` ${table.get(cron)!.join(', ')}`;
  });
  return doc.toString({ lineWidth: 0, blockQuote: 'literal' });
}
