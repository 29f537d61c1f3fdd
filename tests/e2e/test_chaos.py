"""The chaos run, short: `make run`'s processes under the simulator while every kind of
fault is injected (processes killed, also in the middle of a capture, a refund, a transfer
and a push; Redis restarted; PostgreSQL stopped; Stripe's 500, 429, timeouts and 409s;
webhooks delivered again out of order), then every money, ping and push promise checked
against the stand-ins' records, the ledger and Redis (`devtools/chaos.py`). The long run
is `bench/chaos.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EACH = int(os.environ.get("RIDEHAIL_CHAOS_FAULTS_EACH", "1"))
COMPLETED = 6  # the load goes on until this many rides are completed (2 by card at least)
#: the cluster pass: live state on a cluster of this many primaries, two API processes
#: behind HAProxy, and a primary killed among the faults
CLUSTER_PRIMARIES = int(os.environ.get("RIDEHAIL_TEST_REDIS_CLUSTER", "0") or 0)


@pytest.mark.live_state
@pytest.mark.timeout(720)
def test_a_short_chaos_run_breaks_no_promise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIDEHAIL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "devtools.chaos", "--json", "--minutes", "0.5"]
    argv += ["--faults-each", str(EACH), "--drivers", "16", "--passengers", "10"]
    # the load ends once it has done all it needs (every fault served, the rides below);
    # the cap is far above that, and reaching it is a violation, not a quiet pass
    argv += ["--until-completed", str(COMPLETED), "--max-minutes", "5"]
    # a small town and quick trips: every ride is over in about a minute
    argv += ["--radius-m", "700", "--speed-ms", "25", "--trip-m", "800"]
    argv += ["--payout-s", "40", "--settle-s", "90", "--seed", "11"]
    if CLUSTER_PRIMARIES:
        argv += ["--redis-cluster", str(CLUSTER_PRIMARIES), "--api-processes", "2"]
    run = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = run.communicate(timeout=660)
    finally:
        if run.poll() is None:  # SIGTERM: the run stops the stack it started
            run.terminate()
            run.communicate(timeout=60)
    assert out, err[-3000:]
    summary = json.loads(out)
    print(json.dumps({k: v for k, v in summary.items() if k != "simulator"}, indent=1))
    assert summary["violations"] == [], summary["violations"]
    assert run.returncode == 0
    # what the run was asked to do, it did: each kind of fault struck (counted from the
    # stand-ins' records), the rides it waited for, and every check examined something
    assert all(n >= EACH for n in summary["faults"].values()), summary["faults"]
    assert summary["rides"].get("completed", 0) >= COMPLETED
    assert all(n > 0 for n in summary["examined"].values()), summary["examined"]
    if CLUSTER_PRIMARIES:
        assert summary["faults"]["kill_redis_primary"] >= EACH


def test_a_lost_push_is_excused_only_by_a_kill_of_the_push_worker_right_after_its_claim() -> None:
    from devtools.chaos import TIMEOUT_S, lost_to_kills

    unsent = [("n1", "offer", "t1"), ("n2", "offer", "t2"), ("n3", "offer", "t3"),
              ("n4", "offer", "t4"), ("n5", "offer", "t5")]  # fmt: skip
    claims = {
        ("n1", "t1"): ("sending", 100.0, "unknown"),  # killed 0.01 s after its claim
        ("n2", "t2"): ("sending", 100.0, "unknown"),  # the same kill cannot excuse two
        ("n3", "t3"): ("sending", 200.0, "unknown"),  # no kill near it
        ("n4", "t4"): ("sent", 300.0, "sent"),  # sent by our record, yet FCM never got it
        # n5: never claimed
    }
    kills = [100.01, 300.0, 200.0 + TIMEOUT_S + 10]
    left, lost = lost_to_kills(unsent, claims, kills)
    assert lost == 1
    assert [n for n, _kind, _token in left] == ["n2", "n3", "n4", "n5"]
