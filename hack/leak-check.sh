#!/usr/bin/env bash
# Fails if any process started by the test harness under the state folder in
# $SIGNET_TEST_STATE is still alive a few seconds after the test binaries
# exited. (The folder comes from the environment so that this script's own
# command line does not match.)
set -uo pipefail
state="${SIGNET_TEST_STATE:?set SIGNET_TEST_STATE to the test state folder}"
for _ in $(seq 1 15); do
  if ! pgrep -f -- "$state" >/dev/null; then
    echo "leak check: no test processes left behind"
    exit 0
  fi
  sleep 1
done
echo "leak check: processes from the test run are still alive:" >&2
pgrep -a -f -- "$state" >&2
exit 1
