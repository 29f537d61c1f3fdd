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

ROOT = Path(__file__).resolve().parents[2]
EACH = int(os.environ.get("RIDEHAIL_CHAOS_FAULTS_EACH", "1"))


def test_a_short_chaos_run_breaks_no_promise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIDEHAIL_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [sys.executable, "-m", "devtools.chaos", "--json", "--minutes", "1"]
    argv += ["--faults-each", str(EACH), "--drivers", "24", "--passengers", "12"]
    argv += ["--payout-s", "60", "--settle-s", "120", "--seed", "11"]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.stdout, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    print(json.dumps({k: v for k, v in summary.items() if k != "simulator"}, indent=1))
    assert summary["violations"] == [], summary["violations"]
    assert done.returncode == 0
    # every kind of fault happened, on a run that moved money, pings and pushes
    assert all(n >= EACH for n in summary["faults"].values()), summary["faults"]
    assert summary["rides"].get("completed", 0) >= 5
    assert summary["captured"] > 0
    assert summary["refunds"] > 0
    assert summary["transfers"] > 0
    assert summary["trip_pings_checked"] > 0
    assert summary["pushes_sent"] > 0
