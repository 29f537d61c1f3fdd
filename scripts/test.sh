#!/usr/bin/env bash
# The suite in three concurrent passes, each with its own PostgreSQL, Redis, stand-ins
# and stacks on free ports (most of the suite waits on sockets, not on the CPU):
#   whole stack   tests/e2e on the embedded single Redis
#   in process    the rest on the embedded single Redis
#   cluster       every test of live state (-m live_state) again, live state on a
#                 3-primary Redis Cluster and the stacks with 2 API processes behind HAProxy
# Each pass's output goes to .ridehail/test-<pass>.log and is printed when it ends; the
# run fails if any pass fails. Arguments go to every pass (e.g. -x, -k name).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .ridehail
PYTEST=.venv/bin/pytest

run_pass() {  # name, then pytest's arguments
  local name=$1
  shift
  local log=.ridehail/test-$name.log
  local started=$SECONDS
  "$@" > "$log" 2>&1
  local rc=$?
  {
    echo "=== pass '$name': exit $rc after $((SECONDS - started)) s ==="
    cat "$log"
  } | flock .ridehail/test.lock cat
  return $rc
}

run_pass "whole-stack" "$PYTEST" tests/e2e "$@" &
stack_pid=$!
run_pass "in-process" "$PYTEST" --ignore=tests/e2e "$@" &
process_pid=$!
RIDEHAIL_TEST_REDIS_CLUSTER=3 run_pass "cluster" "$PYTEST" -m live_state "$@" &
cluster_pid=$!

failed=0
for pid in $stack_pid $process_pid $cluster_pid; do
  wait "$pid" || failed=1
done
if [ $failed -ne 0 ]; then
  echo "make test: a pass failed (see above)"
  exit 1
fi
echo "make test: every pass green"
