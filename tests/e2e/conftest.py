"""The whole stack as `make run` starts it, for the tests that speak to it from outside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import free_port
from tests.wait import until

BIN = Path(sys.executable).parent
CLUSTER_PRIMARIES = int(os.environ.get("RIDEHAIL_TEST_REDIS_CLUSTER", "0") or 0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`make run`'s stack: one API process and one Redis; in the suite's cluster pass, live
    state on a Redis Cluster of 3 primaries and two API processes behind HAProxy."""
    yield from _stack(tmp_path_factory, CLUSTERED if CLUSTER_PRIMARIES else {})


#: what the stack adds to be scaled out: a cluster of 3 primaries for live state, two API
#: processes behind HAProxy
CLUSTERED = {"RIDEHAIL_DEV_REDIS_CLUSTER": "3", "RIDEHAIL_API_PROCESSES": "2"}


@pytest.fixture(scope="module")
def scaled_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The stack scaled out: live state on a Redis Cluster of 3 primaries with a replica
    each, two API processes behind HAProxy, and the broker on a Redis of its own with a
    replica and three sentinels. The outbox sweep looks every 2 s for jobs older than 5 s
    (production: 60 s), so what a failover drops is sent again within the test."""
    yield from _stack(
        tmp_path_factory,
        {
            **CLUSTERED,
            "RIDEHAIL_DEV_BROKER_SENTINEL": "1",
            "RIDEHAIL_OUTBOX_REDISPATCH_AFTER_S": "5",
            "RIDEHAIL_SWEEP_INTERVAL_S": "2",
        },
    )


def _stack(
    tmp_path_factory: pytest.TempPathFactory, extra: dict[str, str]
) -> Iterator[dict[str, Any]]:
    data = tmp_path_factory.mktemp("stack")
    ports = {name: free_port() for name in ("api", "flower", "redis", "stripe", "fcm", "metrics")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIDEHAIL_")}
    env.update(
        RIDEHAIL_DATA_DIR=str(data),
        RIDEHAIL_API_PORT=str(ports["api"]),
        RIDEHAIL_FLOWER_PORT=str(ports["flower"]),
        RIDEHAIL_METRICS_PORT=str(ports["metrics"]),
        RIDEHAIL_REDIS_URL=f"redis://127.0.0.1:{ports['redis']}/0",
        RIDEHAIL_STRIPE_API_BASE=f"http://127.0.0.1:{ports['stripe']}",
        RIDEHAIL_FCM_ENDPOINT=f"http://127.0.0.1:{ports['fcm']}",
        RIDEHAIL_STRIPE_WEBHOOK_SECRET="whsec_e2e",  # the stand-in delivers signed events
        **extra,
    )
    log = open(data / "stack.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(BIN / "ridehail"), "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    started = time.monotonic()
    try:
        until(lambda: b"ridehail: ready" in (data / "stack.log").read_bytes(), timeout=90)
        yield {
            "proc": proc,
            "ports": ports,
            "env": env,
            "data": data,
            "base": f"http://127.0.0.1:{ports['api']}",
            "metrics": f"http://127.0.0.1:{ports['metrics']}",
            "ready_s": time.monotonic() - started,
        }
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
