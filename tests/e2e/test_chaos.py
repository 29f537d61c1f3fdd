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
