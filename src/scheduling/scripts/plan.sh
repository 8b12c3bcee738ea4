#!/usr/bin/env bash
# The plan job's step: the event that started the run, as a JSON list of the tasks to run.
# SCHEDULES is a JSON object from each cron of the workflow to its tasks.
# Everything above the first blank line is left out of the workflow; see src/scheduling/scripts.ts.
set -eo pipefail

# GitHub reports the cron that fired exactly as written above; SCHEDULES maps each to its tasks.
case "$EVENT_NAME" in
  schedule)
    tasks=$(jq -c --arg cron "$SCHEDULE" '.[$cron] // empty' <<<"$SCHEDULES")
    if [ -z "$tasks" ]; then
      echo "::error::no task is scheduled at '$SCHEDULE': regenerate this workflow (taskgate workflow --write)"
      exit 1
    fi ;;
  workflow_dispatch)
    tasks=$(jq -cn --arg task "$TASK" '[$task]') ;;
  *)
    echo "::error::unexpected event $EVENT_NAME"
    exit 1 ;;
esac
echo "tasks to run: $tasks"
echo "tasks=$tasks" >> "$GITHUB_OUTPUT"
