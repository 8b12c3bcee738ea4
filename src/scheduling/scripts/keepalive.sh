#!/usr/bin/env bash
# The "Re-enable this workflow" step of the keepalive job. Needs GH_TOKEN and WORKFLOW_FILE.
# Everything above the first blank line is left out of the workflow; see src/scheduling/scripts.ts.
set -eo pipefail

# Enabling an enabled workflow restarts GitHub's 60-day inactivity clock without a commit.
curl -fsS -X PUT -o /dev/null \
  -H @<(printf 'Authorization: Bearer %s\n' "$GH_TOKEN") -H 'Accept: application/vnd.github+json' \
  "$GITHUB_API_URL/repos/$GITHUB_REPOSITORY/actions/workflows/$WORKFLOW_FILE/enable"
echo "the schedule of $WORKFLOW_FILE stays enabled"
