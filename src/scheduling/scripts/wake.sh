#!/usr/bin/env bash
# The "Wake the host" step of the generated workflow: GET /readyz until it answers 200.
# Everything above the first blank line is left out of the workflow (GitHub runs steps with
# bash -eo pipefail already); the rest is embedded as the step's script by src/scheduling/workflow.ts.
set -eo pipefail

# shellcheck source=SCRIPTDIR/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"

# A sleeping host answers slowly, refuses connections or says 503 until it is up; /readyz is 200
# only once taskgate and its database both answer (a database failover also waits here).
attempt=1
while true; do
  code=$(curl -sS -o /dev/null -w '%{http_code}' --connect-timeout 20 --max-time 90 "$base/readyz") || true
  if [ "$code" = 200 ]; then
    echo "taskgate is up (attempt $attempt, ${SECONDS}s)"
    exit 0
  fi
  # taskgate's /readyz answers neither: the URL leads elsewhere (a path such as /cron, whose routes
  # want the secret, or another host). Waiting would not change it, and retries under /cron would
  # only get this runner's address blocked.
  if [ "$code" = 401 ] || [ "$code" = 404 ]; then
    echo "::error::GET $base/readyz answered $code, which taskgate's /readyz never does: set the variable TASKGATE_URL to taskgate's base URL (such as https://your-app.onrender.com, with no path like /cron), and the secret CRON_SECRET_KEY to the secret taskgate has"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "::error::GET $base/readyz did not answer 200 within ${WAKE_TIMEOUT}s (last answer: $code)"
    exit 1
  fi
  echo "GET /readyz answered $code: the host or its database may be waking up, retrying in ${RETRY_DELAY}s"
  sleep "$RETRY_DELAY"
  attempt=$((attempt + 1))
done
