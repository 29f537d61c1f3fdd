"""A worker killed (SIGKILL) in the middle of a capture: the capture still happens exactly
once. Real `celery worker -P prefork` subprocess, real Redis broker, the Stripe stand-in
holding the capture's answer so the kill lands while Stripe has already captured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine, utcnow
from infra.queue import celery_app
from infra.stripe_gateway import stripe_client
from tests.factories import card_passenger, card_ride, payment_row
from tests.wait import until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def crash_worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "workers.app",
            "worker",
            "-P",
            "prefork",
            "-c",
            "1",
            "-Q",
            "crash",
            "-n",
            f"crash-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        until(lambda: b"ready" in (tmp_path / "worker.log").read_bytes(), timeout=30)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _children(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(x) for x in out.split()]


def test_a_capture_interrupted_by_sigkill_happens_exactly_once(
    client: TestClient, settings: Any, crash_worker: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    worker_log = tmp_path / "worker.log"
    p = card_passenger(client)
    ride = card_ride(client, p)
    auth = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_capture" and a)
    pi = auth["stripe_payment_intent_id"]
    fare = auth["amount"] - 111
    # the ride ends (set directly, so only the crash worker will settle it)
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "UPDATE rides SET status = 'completed', fare_amount = :f, "
                "completed_at = :t, driver_id = NULL WHERE id = :r"
            ),
            {"f": fare, "t": utcnow(), "r": ride["id"]},
        )
    base = settings.stripe_api_base
    capture_path = f"/v1/payment_intents/{pi}/capture"
    httpx.post(
        f"{base}/_config/faults",
        json={"path_prefix": capture_path, "method": "POST", "delay_s": 6, "count": 1},
    )

    def captures() -> list[dict[str, Any]]:
        rows = httpx.get(f"{base}/_config/requests", params={"path_prefix": capture_path}).json()
        return [r for r in rows if r["method"] == "POST"]

    celery_app.send_task("payments.settle_ride", kwargs={"ride_id": ride["id"]}, queue="crash")
    # the capture reaches Stripe, which captures and holds its answer for 6 s
    until(lambda: b"payments.settle_ride" in worker_log.read_bytes(), timeout=20)
    time.sleep(2.0)
    children = _children(crash_worker.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # the pool process dies mid-call

    # task_reject_on_worker_lost + acks_late: the task comes back and runs again
    done = until(
        lambda: (a := payment_row(ride["id"])) and a["status"] == "succeeded" and a, timeout=40
    )
    assert done["amount_received"] == fare
    assert b"exited with 'signal 9 (SIGKILL)'" in worker_log.read_bytes()
    calls = until(lambda: len(c := captures()) >= 2 and c)
    assert {c["idempotency_key"] for c in calls} == {f"ride-{ride['id']}-capture"}
    intent = stripe_client().v1.payment_intents.retrieve(pi, params={"expand": ["latest_charge"]})
    assert intent.amount_received == fare
    assert intent.latest_charge.amount_captured == fare  # type: ignore[union-attr]
    with get_engine().connect() as conn:
        posted = conn.execute(
            text(
                "SELECT count(*) FROM journal_entries WHERE kind = 'card_received' AND ride_id = :r"
            ),
            {"r": ride["id"]},
        ).scalar_one()
    assert posted == 1
