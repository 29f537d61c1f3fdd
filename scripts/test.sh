#!/usr/bin/env bash
# The suite in four concurrent passes, each with its own PostgreSQL, Redis, stand-ins
# and stacks on free ports (most of the suite waits on sockets, not on the CPU):
#   whole stack   tests/e2e on the embedded single Redis (but the scale-out tests)
#   in process    the rest, and the scale-out tests (their stack has its own cluster)
#   cluster       every test of live state (-m live_state) again, live state on a
#                 3-primary Redis Cluster and the stacks with 2 API processes behind HAProxy
#   cluster chaos the short chaos run of that pass, on its own (it mostly waits: on
#                 grace periods, timeouts and the simulated apps)
# (the passes are balanced by their durations: about 8, 7, 5 and 5 minutes on 2 cores)
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

SCALE_OUT=tests/e2e/test_scale_out.py
STACKS=$(ls tests/e2e/test_*.py | grep -v "^$SCALE_OUT$")
# shellcheck disable=SC2046,SC2086
run_pass "whole-stack" "$PYTEST" --durations=8 $STACKS "$@" &
stack_pid=$!
# shellcheck disable=SC2046
run_pass "in-process" "$PYTEST" --durations=8 $(printf -- '--ignore=%s ' $STACKS) "$@" &
process_pid=$!
CHAOS=tests/e2e/test_chaos.py
RIDEHAIL_TEST_REDIS_CLUSTER=3 run_pass "cluster" "$PYTEST" --durations=8 -m live_state \
  --ignore=$CHAOS "$@" &
cluster_pid=$!
RIDEHAIL_TEST_REDIS_CLUSTER=3 run_pass "cluster-chaos" "$PYTEST" --durations=8 -m live_state \
  $CHAOS "$@" &
chaos_pid=$!

failed=0
for pid in $stack_pid $process_pid $cluster_pid $chaos_pid; do
  wait "$pid" || failed=1
done
if [ $failed -ne 0 ]; then
  echo "make test: a pass failed (see above)"
  exit 1
fi
echo "make test: every pass green"
