"""The broker apart, behind Sentinel (`RIDEHAIL_DEV_BROKER_SENTINEL=1`): a primary, a
replica and three sentinels. Its primary is killed between two rides: the sentinels
promote the replica, the workers and beat reconnect to it, the API's readiness says so,
and the outbox keeps its promise: every job committed, before, during and after the
failover, is done (a message the old primary took and never passed on is sent again by
the sweep)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
import uuid
from typing import Any

import httpx
import redis

from tests.factories import Account, register
from tests.wait import until


def _ride_done_by_the_workers(http: httpx.Client, where: tuple[float, float]) -> str:
    """A cash ride through the API, which needs the workers at each step that matters:
    the dispatch (the offer), and the fare in the driver's ledger at the end."""
    tag = uuid.uuid4().hex[:8]
    driver: Account = register(http, "driver", email=f"d-{tag}@example.com")  # type: ignore[arg-type]
    passenger: Account = register(http, "passenger", email=f"p-{tag}@example.com")  # type: ignore[arg-type]

    def ok(answer: httpx.Response, status: int = 200) -> Any:
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    def ping(lat: float, lng: float) -> None:
        fix = {"lat": lat, "lng": lng, "recorded_at": time.time()}
        ok(http.post("/api/v1/drivers/me/location", json=fix, headers=driver.headers), 202)

    ok(http.post("/api/v1/drivers/me/status", json={"status": "online"}, headers=driver.headers))
    ping(*where)
    ride = ok(
        http.post(
            "/api/v1/rides",
            json={"pickup": {"lat": where[0], "lng": where[1]},
                  "dropoff": {"lat": where[0] + 0.004, "lng": where[1] + 0.004}, "payment": "cash"},
            headers=passenger.headers,
        ),
        201,
    )  # fmt: skip
    until(
        lambda: http.get("/api/v1/drivers/me/offers", headers=driver.headers).json()["items"],
        timeout=45,
    )
    for action in ("accept", "arrive", "start"):
        ok(http.post(f"/api/v1/rides/{ride['id']}/{action}", headers=driver.headers))
    time.sleep(1.0)
    ping(where[0] + 0.0003, where[1] + 0.0003)  # a car's pace
    ok(http.post(f"/api/v1/rides/{ride['id']}/complete", headers=driver.headers))
    until(
        lambda: any(
            line["ride_id"] == ride["id"]
            for line in http.get("/api/v1/drivers/me/earnings", headers=driver.headers).json()[
                "items"
            ]
        ),
        timeout=45,
    )
    return str(ride["id"])


def _open_jobs(stack: dict[str, Any]) -> int:
    with sqlite3.connect(stack["data"] / "ridehail.db") as db:
        (n,) = db.execute(
            "SELECT count(*) FROM outbox WHERE completed_at IS NULL AND failed_at IS NULL"
        ).fetchone()
    return int(n)


def test_a_failover_of_the_brokers_primary_loses_no_job(sentinel_stack: dict[str, Any]) -> None:
    stack = sentinel_stack
    log = (stack["data"] / "stack.log").read_text()
    url = re.search(r"ridehail: broker at (\S+) \(master (\S+)\)", log)
    assert url, log[-2000:]
    sentinels = [int(p) for p in re.findall(r"sentinel://127\.0\.0\.1:(\d+)", url.group(1))]
    master = url.group(2)

    def primary() -> int:
        host, port = redis.Redis(port=sentinels[0]).sentinel_get_master_addr_by_name(master)
        return int(port)

    http = httpx.Client(base_url=stack["base"], timeout=10)
    assert http.get("/readyz").json()["checks"]["broker"] == "ok"
    _ride_done_by_the_workers(http, (52.61, 13.51))

    first = primary()
    pid = int(re.findall(r"started broker-primary \(pid (\d+)\)", log)[-1])
    os.kill(pid, signal.SIGKILL)
    # a ride whose jobs are committed while the broker has no primary
    ride = _ride_done_by_the_workers(http, (52.62, 13.52))
    until(lambda: primary() != first, timeout=30)  # the replica, promoted
    assert http.get("/readyz").json()["checks"]["broker"] == "ok"
    _ride_done_by_the_workers(http, (52.63, 13.53))
    until(lambda: _open_jobs(stack) == 0, timeout=60)
    assert ride
    assert "ridehail: broker-primary exited" not in (stack["data"] / "stack.log").read_text()
