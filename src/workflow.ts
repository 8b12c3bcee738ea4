import { createRequire } from 'node:module';
import type { RegisteredTask } from './registry.js';
import { DEFAULT_TIMEOUT_MS } from './task.js';

/**
 * The GitHub Actions workflow that schedules taskgate's tasks, generated from the registry so
 * that adding a task module and regenerating is all it takes to schedule it.
 *
 * Shape: one `schedule` entry per distinct cron; a `plan` job turns the cron that fired (or the
 * `workflow_dispatch` input) into a JSON list of task names; a `run` matrix job over that list
 * wakes the host and calls `POST /cron/<task>`; a `keepalive` job stops GitHub from disabling
 * the schedule after 60 days without commits. Expressions only ever reach scripts through `env`,
 * never inside `run:` text, so no input can inject shell code.
 */

/** Where the generated workflow lives in the repository. */
export const WORKFLOW_PATH = '.github/workflows/taskgate.yml';
const WORKFLOW_FILE = WORKFLOW_PATH.split('/').pop()!;

/** Default seconds to keep retrying while a sleeping host wakes (Render's free tier takes 30 to 60 s). */
export const DEFAULT_WAKE_TIMEOUT_S = 300;
/** Default seconds between retries. */
export const DEFAULT_RETRY_DELAY_S = 5;

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

const shellQuote = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

function planScript(table: Map<string, string[]>): string {
  const cases = [...table].map(
    ([cron, names]) => `      ${shellQuote(cron)}) tasks=${shellQuote(JSON.stringify(names))} ;;`,
  );
  return [
    '# GitHub reports the cron that fired exactly as written above; each maps to its tasks.',
    'case "$EVENT_NAME" in',
    '  schedule)',
    '    case "$SCHEDULE" in',
    ...cases,
    '      *)',
    `        echo "::error::no task is scheduled at '$SCHEDULE': regenerate this workflow (taskgate workflow --write)"`,
    '        exit 1 ;;',
    '    esac ;;',
    '  workflow_dispatch)',
    '    tasks=$(jq -cn --arg task "$TASK" \'[$task]\') ;;',
    '  *)',
    '    echo "::error::unexpected event $EVENT_NAME"',
    '    exit 1 ;;',
    'esac',
    'echo "tasks to run: $tasks"',
    'echo "tasks=$tasks" >> "$GITHUB_OUTPUT"',
    '',
  ].join('\n');
}

/** Shared by the wake and trigger steps: checks the knobs and names the base URL. */
const PRELUDE = `if [ -z "$TASKGATE_URL" ]; then
  echo "::error::TASKGATE_URL is not set: add a repository variable (or secret) TASKGATE_URL holding taskgate's base URL"
  exit 1
fi
for knob in WAKE_TIMEOUT RETRY_DELAY; do
  if ! [[ "\${!knob}" =~ ^[0-9]+(\\.[0-9]+)?$ ]]; then
    echo "::error::TASKGATE_$knob must be a number of seconds, not '\${!knob}'"
    exit 1
  fi
done
base="\${TASKGATE_URL%/}"
deadline=$((SECONDS + \${WAKE_TIMEOUT%.*}))
`;

const WAKE_SCRIPT = `${PRELUDE}
# A sleeping host answers slowly, refuses connections or says 503 until it is up; /readyz is 200
# only once taskgate and its database both answer (a database failover also waits here).
attempt=1
while true; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --connect-timeout 20 --max-time 90 "$base/readyz") || true
  if [ "$code" = 200 ]; then
    echo "taskgate is up (attempt $attempt, \${SECONDS}s)"
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "::error::GET $base/readyz did not answer 200 within \${WAKE_TIMEOUT}s (last answer: $code)"
    exit 1
  fi
  echo "GET /readyz answered $code: the host or its database may be waking up, retrying in \${RETRY_DELAY}s"
  sleep "$RETRY_DELAY"
  attempt=$((attempt + 1))
done
`;

function triggerScript(requestTimeoutS: number): string {
  return `${PRELUDE}
answer=$(mktemp)
headers=$(mktemp)
header() { grep -i "^$1:" "$headers" | tail -n 1 | cut -d: -f2- | tr -d '\\r' | sed 's/^ *//' || true; }
# Text from outside (inputs, taskgate's answers) is escaped as GitHub documents before it
# reaches a workflow command, and printed with workflow commands stopped, so none can inject one.
escape() { local s="$*"; s=\${s//'%'/'%25'}; s=\${s//$'\\r'/'%0D'}; s=\${s//$'\\n'/'%0A'}; printf '%s' "$s"; }
fail() { echo "::error::$(escape "$*")"; }
show() {
  local token
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \\n')
  echo "::stop-commands::$token"
  jq . "$answer" 2>/dev/null || cat "$answer"
  echo
  echo "::$token::"
}
field() { jq -r "$1 // empty" "$answer" 2>/dev/null || true; }
run_field() { field "(.run // .) | $1"; }
summary() { if [ -n "\${GITHUB_STEP_SUMMARY:-}" ]; then echo "$1" >> "$GITHUB_STEP_SUMMARY"; fi; }
secret_header() { printf 'X-Cron-Secret: %s\\n' "$CRON_SECRET_KEY"; }

if ! jq -e 'type == "object"' <<<"$PARAMS" >/dev/null 2>&1; then
  fail "params must be a JSON object, not: $PARAMS"
  exit 1
fi
body=$(jq -c --argjson dry "$DRY_RUN" '. + (if $dry then {dryRun: true} else {} end)' <<<"$PARAMS")

# Every attempt carries the same Idempotency-Key: when an answer is lost (a proxy's 502, a
# timeout) the retry gets the first run back, so the task runs once.
while true; do
  : > "$headers"
  code=$(curl -sS -X POST -o "$answer" -D "$headers" -w '%{http_code}' \\
    --connect-timeout 20 --max-time ${requestTimeoutS} \\
    -H @<(secret_header) -H 'Content-Type: application/json' -H 'Accept: application/json' \\
    -H "Idempotency-Key: $IDEMPOTENCY_KEY" --data "$body" "$base/cron/$TASK") || true
  case "$code" in
    000|408|429|502|503|504) ;;
    *) break ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    show
    fail "POST /cron/$TASK still answered $code after \${WAKE_TIMEOUT}s of retries"
    exit 1
  fi
  wait="$RETRY_DELAY"
  retry_after=$(header retry-after)
  if [[ "$retry_after" =~ ^[0-9]+$ ]]; then wait="$retry_after"; fi
  echo "POST /cron/$TASK answered $code: retrying in \${wait}s with the same Idempotency-Key"
  sleep "$wait"
done

case "$code" in
  200)
    show
    if [ "$(field .status)" = success ]; then
      summary "$TASK succeeded in $(field .durationMs) ms (run $(field .runId))"
      exit 0
    fi
    fail "$TASK answered 200 without success"
    exit 1 ;;
  202)
    location=$(header location)
    if [ -z "$location" ]; then location="/cron/runs/$(field .runId)"; fi
    # The secret goes only to the configured origin: a Location elsewhere is not followed.
    origin=$(grep -oiE '^https?://[^/]+' <<<"$base" || true)
    case "$location" in
      [Hh][Tt][Tt][Pp]://* | [Hh][Tt][Tt][Pp][Ss]://*)
        if [ "$(grep -oiE '^https?://[^/]+' <<<"$location" | tr 'A-Z' 'a-z')" != "$(tr 'A-Z' 'a-z' <<<"$origin")" ]; then
          fail "taskgate answered with a Location on another origin ($location): not following it with the secret"
          exit 1
        fi
        url="$location" ;;
      # A path, appended to the base: whatever follows the first slash, the host stays the same.
      /*) url="$base$location" ;;
      *)
        fail "taskgate answered with a Location that is not a path on its origin ($location): not following it"
        exit 1 ;;
    esac
    echo "taskgate accepted the run; following $location until it ends"
    poll_deadline=$((SECONDS + ${requestTimeoutS}))
    while [ "$SECONDS" -lt "$poll_deadline" ]; do
      code=$(curl -sS -o "$answer" -w '%{http_code}' --connect-timeout 20 --max-time 60 \\
        -H @<(secret_header) -H 'Accept: application/json' "$url") || true
      if [ "$code" = 200 ]; then
        status=$(run_field .status)
        case "$status" in
          running) ;;
          succeeded)
            show
            summary "$TASK succeeded in $(run_field .durationMs) ms (run $(run_field .id))"
            exit 0 ;;
          *)
            show
            fail "$TASK $status: $(run_field .error)"
            exit 1 ;;
        esac
      elif ! [[ "$code" =~ ^(000|429|502|503|504)$ ]]; then
        show
        fail "GET $location answered $code"
        exit 1
      fi
      sleep "$RETRY_DELAY"
    done
    fail "$TASK was still running after ${requestTimeoutS}s"
    exit 1 ;;
  409)
    show
    if [ "$(field .code)" = TASK_CANCELLED ]; then
      fail "$(field .message) (run $(field .runId))"
    else
      fail "$TASK is already running (run $(field .runId)): this trigger did not start another"
    fi
    exit 1 ;;
  423)
    # An operator paused the task: nothing ran, on purpose. A notice, not a failure.
    show
    until=$(field .until)
    echo "::notice::$(escape "$TASK is paused until \${until:-resumed} ($(field .reason)): not run")"
    summary "$TASK is paused until \${until:-resumed}: not run"
    exit 0 ;;
  *)
    show
    summary "$TASK failed: HTTP $code $(field .code)"
    fail "POST /cron/$TASK answered $code $(field .code): $(field .message)"
    exit 1 ;;
esac
`;
}

const KEEPALIVE_SCRIPT = `# Enabling an enabled workflow restarts GitHub's 60-day inactivity clock without a commit.
curl -fsS -X PUT -o /dev/null \\
  -H @<(printf 'Authorization: Bearer %s\\n' "$GH_TOKEN") -H 'Accept: application/vnd.github+json' \\
  "$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/actions/workflows/${WORKFLOW_FILE}/enable"
echo "the schedule of ${WORKFLOW_FILE} stays enabled"
`;

/** The workflow's text for these tasks (the registry's `list()`). Pure: same tasks, same text. */
export function generateWorkflow(tasks: RegisteredTask[]): string {
  if (tasks.length === 0) throw new Error('there are no tasks to schedule');
  const table = scheduleTable(tasks);
  const names = tasks.map((t) => t.definition.name);
  const longestTimeoutMs = Math.max(...tasks.map((t) => t.definition.timeoutMs ?? DEFAULT_TIMEOUT_MS));
  // A sync POST lasts as long as the run; past this the server answers 202 and the step polls.
  const requestTimeoutS = Math.ceil(longestTimeoutMs / 1000) + 120;
  const jobMinutes = Math.ceil((requestTimeoutS * 2 + DEFAULT_WAKE_TIMEOUT_S * 2) / 60) + 5;

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
            },
            run: planScript(table),
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
          WAKE_TIMEOUT: expr(`vars.TASKGATE_WAKE_TIMEOUT || '${DEFAULT_WAKE_TIMEOUT_S}'`),
          RETRY_DELAY: expr(`vars.TASKGATE_RETRY_DELAY || '${DEFAULT_RETRY_DELAY_S}'`),
        },
        steps: [
          { name: 'Wake the host', run: WAKE_SCRIPT },
          {
            name: `Run ${expr('matrix.task')}`,
            env: {
              TASK: expr('matrix.task'),
              CRON_SECRET_KEY: expr('secrets.CRON_SECRET_KEY'),
              DRY_RUN: expr('inputs.dry_run == true'),
              PARAMS: expr("inputs.params || '{}'"),
              IDEMPOTENCY_KEY: `${expr('github.run_id')}-${expr('github.run_attempt')}-${expr('matrix.task')}`,
            },
            run: triggerScript(requestTimeoutS),
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
          { name: 'Re-enable this workflow', env: { GH_TOKEN: expr('github.token') }, run: KEEPALIVE_SCRIPT },
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
