#!/usr/bin/env bash
# Fails if any process started by the test harness under state folder $1 is
# still alive a few seconds after the test binaries exited.
set -uo pipefail
state="$1"
for _ in 1 2 3 4 5 6 7 8 9 10; do
  if ! pgrep -f -- "$state" >/dev/null; then
    echo "leak check: no test processes left behind"
    exit 0
  fi
  sleep 1
done
echo "leak check: processes from the test run are still alive:" >&2
pgrep -a -f -- "$state" >&2
exit 1
