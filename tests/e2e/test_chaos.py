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


@pytest.mark.timeout(600)
def test_a_short_chaos_run_breaks_no_promise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIDEHAIL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "devtools.chaos", "--json", "--minutes", "0.5"]
    argv += ["--faults-each", str(EACH), "--drivers", "16", "--passengers", "10"]
    # a small town and quick trips: every ride is over in about a minute
    argv += ["--radius-m", "700", "--speed-ms", "25", "--trip-m", "800"]
    argv += ["--payout-s", "40", "--settle-s", "90", "--seed", "11"]
    run = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = run.communicate(timeout=540)
    finally:
        if run.poll() is None:  # SIGTERM: the run stops the stack it started
            run.terminate()
            run.communicate(timeout=60)
    assert out, err[-3000:]
    summary = json.loads(out)
    print(json.dumps({k: v for k, v in summary.items() if k != "simulator"}, indent=1))
    assert summary["violations"] == [], summary["violations"]
    assert run.returncode == 0
    # every kind of fault happened, on a run that moved money, pings and pushes
    assert all(n >= EACH for n in summary["faults"].values()), summary["faults"]
    assert summary["rides"].get("completed", 0) >= 5
    assert summary["captured"] > 0
    assert summary["refunds"] > 0
    assert summary["transfers"] > 0
    assert summary["trip_pings_checked"] > 0
    assert summary["pushes_sent"] > 0
