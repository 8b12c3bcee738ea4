#!/usr/bin/env bash
# The "Run <task>" step: POST /cron/$TASK once (one Idempotency-Key for every retry), then follow
# a 202 to the run's end. REQUEST_TIMEOUT bounds one POST and the following; TRANSIENT_STATUSES
# lists the answers that mean "not now, retry" (000 is curl's "no answer at all").
# Everything above the first blank line is left out of the workflow; see src/scheduling/scripts.ts.
set -eo pipefail

# shellcheck source=SCRIPTDIR/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

answer=$(mktemp)
headers=$(mktemp)
header() { grep -i "^$1:" "$headers" | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//' || true; }
# Text from outside (inputs, taskgate's answers) is escaped as GitHub documents before it
# reaches a workflow command, and printed with workflow commands stopped, so none can inject one.
escape() { local s="$*"; s=${s//'%'/'%25'}; s=${s//$'\r'/'%0D'}; s=${s//$'\n'/'%0A'}; printf '%s' "$s"; }
fail() { echo "::error::$(escape "$*")"; }
show() {
  local token
  token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  echo "::stop-commands::$token"
  jq . "$answer" 2>/dev/null || cat "$answer"
  echo
  echo "::$token::"
}
field() { jq -r "$1 // empty" "$answer" 2>/dev/null || true; }
run_field() { field "(.run // .) | $1"; }
summary() { if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then echo "$1" >> "$GITHUB_STEP_SUMMARY"; fi; }
transient() { [[ " $TRANSIENT_STATUSES " == *" $1 "* ]]; }
secret_header() { printf 'X-Cron-Secret: %s\n' "$CRON_SECRET_KEY"; }

if ! jq -e 'type == "object"' <<<"$PARAMS" >/dev/null 2>&1; then
  fail "params must be a JSON object, not: $PARAMS"
  exit 1
fi
body=$(jq -c --argjson dry "$DRY_RUN" '. + (if $dry then {dryRun: true} else {} end)' <<<"$PARAMS")
# A scheduled run says so: taskgate maps it to its slot, which runs once whoever else fires it.
scheduler=()
if [ "$SCHEDULED" = true ]; then scheduler=(-H 'X-Cron-Scheduler: github'); fi

# Every attempt carries the same Idempotency-Key: when an answer is lost (a proxy's 502, a
# timeout) the retry gets the first run back, so the task runs once.
while true; do
  : > "$headers"
  code=$(curl -sS -X POST -o "$answer" -D "$headers" -w '%{http_code}' \
    --connect-timeout 20 --max-time "$REQUEST_TIMEOUT" \
    -H @<(secret_header) -H 'Content-Type: application/json' -H 'Accept: application/json' \
    -H "Idempotency-Key: $IDEMPOTENCY_KEY" "${scheduler[@]}" --data "$body" "$base/cron/$TASK") || true
  if ! transient "$code"; then break; fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    show
    fail "POST /cron/$TASK still answered $code after ${WAKE_TIMEOUT}s of retries"
    exit 1
  fi
  wait="$RETRY_DELAY"
  retry_after=$(header retry-after)
  if [[ "$retry_after" =~ ^[0-9]+$ ]]; then wait="$retry_after"; fi
  echo "POST /cron/$TASK answered $code: retrying in ${wait}s with the same Idempotency-Key"
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
        if [ "$(grep -oiE '^https?://[^/]+' <<<"$location" | tr '[:upper:]' '[:lower:]')" != "$(tr '[:upper:]' '[:lower:]' <<<"$origin")" ]; then
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
    poll_deadline=$((SECONDS + REQUEST_TIMEOUT))
    while [ "$SECONDS" -lt "$poll_deadline" ]; do
      code=$(curl -sS -o "$answer" -w '%{http_code}' --connect-timeout 20 --max-time 60 \
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
      elif ! transient "$code"; then
        show
        fail "GET $location answered $code"
        exit 1
      fi
      sleep "$RETRY_DELAY"
    done
    fail "$TASK was still running after ${REQUEST_TIMEOUT}s"
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
    echo "::notice::$(escape "$TASK is paused until ${until:-resumed} ($(field .reason)): not run")"
    summary "$TASK is paused until ${until:-resumed}: not run"
    exit 0 ;;
  *)
    show
    summary "$TASK failed: HTTP $code $(field .code)"
    hint=''
    case "$code $(field .code)" in
      '401 '*) hint=' (the secret CRON_SECRET_KEY is not one taskgate accepts, or the variable TASKGATE_URL leads to another taskgate)' ;;
      '404 NOT_FOUND' | '404 ') hint=" (the variable TASKGATE_URL must be taskgate's base URL, with no path)" ;;
    esac
    fail "POST /cron/$TASK answered $code $(field .code): $(field .message)$hint"
    exit 1 ;;
esac
