#!/usr/bin/env bash
# shellcheck disable=SC2034 # base and deadline are for the steps that source this file
# The checks shared by the wake and trigger steps: the knobs are sane, and `base` names taskgate.
# The generator inlines it where a step sources it; see src/scheduling/scripts.ts.

if [ -z "$TASKGATE_URL" ]; then
  echo "::error::TASKGATE_URL is not set: add a repository variable (or secret) TASKGATE_URL holding taskgate's base URL"
  exit 1
fi
for knob in WAKE_TIMEOUT RETRY_DELAY; do
  if ! [[ "${!knob}" =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
    echo "::error::TASKGATE_$knob must be a number of seconds, not '${!knob}'"
    exit 1
  fi
done
base="${TASKGATE_URL%/}"
deadline=$((SECONDS + ${WAKE_TIMEOUT%.*}))
