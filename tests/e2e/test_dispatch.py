"""Dispatch with a real worker, a real API process, Redis and PostgreSQL: offers reach the
nearest idle driver over SSE, move on after decline and expiry, are withdrawn on cancel,
the ride expires when nobody takes it, and every race ends in one consistent outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from infra.db import get_engine
from infra.live.keys import Keys
from infra.queue import celery_app
from tests.factories import Account, register
from tests.services import running_api
from tests.sse import SseClient
from tests.wait import until

pytestmark = pytest.mark.live_state

PICKUP = {"lat": 52.5200, "lng": 13.4050}
DROPOFF = {"lat": 52.5000, "lng": 13.4500}
M_LAT = 1 / 111_195  # one metre of latitude


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with running_api({"RIDEHAIL_SSE_KEEPALIVE_S": "1"}) as base:
        yield base


@pytest.fixture
def fast_dispatch(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The worker runs in this process: its settings are these."""
    monkeypatch.setattr(settings, "dispatch", replace(settings.dispatch, wave_size=1))
    monkeypatch.setattr(settings, "dispatch", replace(settings.dispatch, offer_ttl_s=3.0))
    monkeypatch.setattr(settings, "dispatch", replace(settings.dispatch, empty_wave_retry_s=0.3))
    return settings


@pytest.fixture
def beat(celery_session_worker: Any) -> Iterator[None]:
    """Beat's one-second `dispatch.sweep`, sped up (beat itself is tested by `make run`)."""
    stopping = threading.Event()

    def loop() -> None:
        while not stopping.is_set():
            celery_app.send_task("dispatch.sweep")
            stopping.wait(0.25)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield
    stopping.set()
    t.join()


@pytest.fixture
def http(
    db: None, api: str, celery_session_worker: Any, fast_dispatch: Any
) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api, timeout=10) as c:
        yield c


def _driver_at(http: httpx.Client, metres_north: float) -> Account:
    d = register(http, "driver")  # type: ignore[arg-type]
    assert (
        http.post(
            "/api/v1/drivers/me/status", json={"status": "online"}, headers=d.headers
        ).status_code
        == 200
    )
    r = http.post(
        "/api/v1/drivers/me/location",
        json={
            "lat": PICKUP["lat"] + metres_north * M_LAT,
            "lng": PICKUP["lng"],
            "recorded_at": time.time(),
        },
        headers=d.headers,
    )
    assert r.status_code == 202, r.text
    return d


def _stream(api: str, d: Account) -> SseClient:
    sse = SseClient(f"{api}/api/v1/drivers/me/events", d.headers).start()
    assert sse.status == 200
    return sse


def _request(http: httpx.Client) -> tuple[Account, dict[str, Any], float]:
    p = register(http, "passenger")  # type: ignore[arg-type]
    t0 = time.monotonic()
    r = http.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert r.status_code == 201, r.text
    return p, r.json(), t0


def _offers(ride_id: str) -> list[Any]:
    with get_engine().connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT driver_id, status, wave, created_at, expires_at, decided_at "
                    "FROM offers WHERE ride_id = :r "
                    "ORDER BY created_at"
                ),
                {"r": ride_id},
            ).all()
        )


def _ride_status(ride_id: str) -> str:
    with get_engine().connect() as conn:
        return str(
            conn.execute(
                text("SELECT status FROM rides WHERE id = :r"), {"r": ride_id}
            ).scalar_one()
        )


def test_the_nearest_idle_driver_gets_the_offer_first_within_a_second(
    http: httpx.Client, api: str
) -> None:
    far, near, busy_near = _driver_at(http, 900), _driver_at(http, 300), _driver_at(http, 50)
    offline = _driver_at(http, 20)
    http.post("/api/v1/drivers/me/status", json={"status": "offline"}, headers=offline.headers)
    # busy_near is on another ride
    _p0, other, _ = _request(http)
    until(lambda: _offers(other["id"]))
    assert str(_offers(other["id"])[0].driver_id) == busy_near.id
    assert (
        http.post(f"/api/v1/rides/{other['id']}/accept", headers=busy_near.headers).status_code
        == 200
    )

    streams = {d.id: _stream(api, d) for d in (far, near)}
    _p, ride, t0 = _request(http)
    offer = streams[near.id].next(kind="offer", timeout=5)
    latency = time.monotonic() - t0
    assert latency < 1.0, f"first offer after {latency:.3f}s"
    assert offer.data["ride_id"] == ride["id"]
    assert offer.data["pickup"] == PICKUP
    assert offer.data["dropoff"] == DROPOFF
    assert offer.data["estimate"] == ride["estimate"]
    assert offer.data["expires_at"].endswith("Z")
    assert 250 <= offer.data["distance_m"] <= 350
    polled = http.get("/api/v1/drivers/me/offers", headers=near.headers).json()["items"]
    assert [o["ride_id"] for o in polled] == [ride["id"]]
    assert http.get("/api/v1/drivers/me/offers", headers=far.headers).json()["items"] == []
    # accept it: the ride is the driver's
    r = http.post(f"/api/v1/rides/{ride['id']}/accept", headers=near.headers)
    assert r.status_code == 200
    assert r.json()["driver_id"] == near.id
    assert [(str(o.driver_id), o.status) for o in _offers(ride["id"])] == [(near.id, "accepted")]


def test_a_driver_without_an_offer_cannot_accept(http: httpx.Client) -> None:
    _p, ride, _ = _request(http)
    stranger = register(http, "driver")  # type: ignore[arg-type]
    r = http.post(f"/api/v1/rides/{ride['id']}/accept", headers=stranger.headers)
    assert r.status_code == 404  # never offered to them: it does not exist for them
    assert r.json()["code"] == "ride_not_found"


def test_decline_moves_on_at_once_and_is_counted(http: httpx.Client, api: str) -> None:
    first, second = _driver_at(http, 100), _driver_at(http, 600)
    s1, s2 = _stream(api, first), _stream(api, second)
    _p, ride, _ = _request(http)
    assert s1.next(kind="offer").data["ride_id"] == ride["id"]
    declined = http.post(f"/api/v1/rides/{ride['id']}/decline", headers=first.headers)
    assert declined.status_code == 200
    assert declined.json() == {"ride_id": ride["id"], "offer": "declined"}
    assert s2.next(kind="offer", timeout=5).data["ride_id"] == ride["id"]
    was, now = _offers(ride["id"])
    assert [(str(o.driver_id), o.status) for o in (was, now)] == [
        (first.id, "declined"),
        (second.id, "pending"),
    ]
    # at once: the next offer follows the decline, long before the declined one would
    # have expired (no beat runs here: nothing else could have moved it on)
    assert was.decided_at <= now.created_at < was.expires_at
    # declining again, or a ride never offered, is refused
    assert (
        http.post(f"/api/v1/rides/{ride['id']}/decline", headers=first.headers).status_code == 409
    )
    from infra.redis import get_sync_redis

    assert (
        until(lambda: get_sync_redis().hget(Keys.of(Keys.OFFER_STATS, first.id), "declined")) == "1"
    )


def test_an_ignored_offer_expires_and_moves_on(http: httpx.Client, api: str, beat: None) -> None:
    first, second = _driver_at(http, 100), _driver_at(http, 600)
    s1, s2 = _stream(api, first), _stream(api, second)
    _p, ride, _ = _request(http)
    offer = s1.next(kind="offer")
    gone = s1.next(kind="offer_withdrawn", timeout=8)
    assert gone.data == {"ride_id": ride["id"], "reason": "expired"}
    assert s2.next(kind="offer", timeout=5).data["ride_id"] == ride["id"]
    late = http.post(f"/api/v1/rides/{ride['id']}/accept", headers=first.headers)
    assert late.status_code == 409
    assert late.json()["code"] == "offer_expired"
    assert offer.data["expires_at"]


def test_cancel_withdraws_the_offer(http: httpx.Client, api: str) -> None:
    d = _driver_at(http, 100)
    sse = _stream(api, d)
    p, ride, _ = _request(http)
    sse.next(kind="offer")
    assert http.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers).status_code == 200
    assert sse.next(kind="offer_withdrawn").data == {"ride_id": ride["id"], "reason": "cancelled"}
    assert http.get("/api/v1/drivers/me/offers", headers=d.headers).json()["items"] == []
    r = http.post(f"/api/v1/rides/{ride['id']}/accept", headers=d.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "ride_gone"


def test_nobody_takes_it_so_the_ride_expires(http: httpx.Client, api: str, beat: None) -> None:
    p, ride, _ = _request(http)
    sse = SseClient(f"{api}/api/v1/rides/{ride['id']}/events", p.headers).start()
    statuses = []
    while (e := sse.next(kind="status", timeout=15)).data["status"] != "expired":
        statuses.append(e.data["status"])
    assert statuses == ["requested"]
    assert sse.ended.wait(5)
    assert _ride_status(ride["id"]) == "expired"
    assert http.get(f"/api/v1/rides/{ride['id']}", headers=p.headers).json()["status"] == "expired"
    # the passenger may ask again
    again = http.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert again.status_code == 201


def test_a_driver_holds_one_offer_at_a_time(http: httpx.Client, api: str) -> None:
    d = _driver_at(http, 100)
    sse = _stream(api, d)
    _p1, r1, _ = _request(http)
    assert sse.next(kind="offer").data["ride_id"] == r1["id"]
    _p2, r2, _ = _request(http)
    until(
        lambda: _ride_status(r2["id"]) and ((row := _first_wave(r2["id"])) is not None and row >= 1)
    )
    assert _offers(r2["id"]) == []  # nobody else around; the busy-with-an-offer driver skipped


def _first_wave(ride_id: str) -> int | None:
    with get_engine().connect() as conn:
        return conn.execute(
            text("SELECT dispatch_wave FROM rides WHERE id = :r"), {"r": ride_id}
        ).scalar_one()


def _race(*fns: Any) -> list[Any]:
    barrier = threading.Barrier(len(fns))

    def go(fn: Any) -> Any:
        barrier.wait()
        return fn()

    with ThreadPoolExecutor(len(fns)) as pool:
        return list(pool.map(go, fns))


def test_an_offer_accepted_as_it_expires_has_one_outcome(http: httpx.Client) -> None:
    outcomes = set()
    for _ in range(4):
        d = _driver_at(http, 100)
        _p, ride, _ = _request(http)
        until(lambda ride=ride: _offers(ride["id"]))
        with get_engine().begin() as conn:  # the offer's last instant
            conn.execute(
                text("UPDATE offers SET expires_at = now() + interval '30 ms' WHERE ride_id = :r"),
                {"r": ride["id"]},
            )
        time.sleep(0.02)
        accept, _swept = _race(
            lambda ride=ride, d=d: http.post(
                f"/api/v1/rides/{ride['id']}/accept", headers=d.headers
            ),
            lambda ride=ride: celery_app.send_task(
                "dispatch.advance", kwargs={"ride_id": ride["id"]}
            ).get(timeout=10),
        )
        # the sweep may have run before the offer's last instant had passed (a busy
        # machine): beat would run it again within a second; here it is run once more
        celery_app.send_task("dispatch.advance", kwargs={"ride_id": ride["id"]}).get(timeout=10)
        offer = _offers(ride["id"])[0]
        status = _ride_status(ride["id"])
        if accept.status_code == 200:
            assert (offer.status, status) == ("accepted", "accepted")
        else:
            assert accept.json()["code"] == "offer_expired"
            assert offer.status == "expired"
            assert status == "requested"
        outcomes.add(accept.status_code)
        http.post(f"/api/v1/rides/{ride['id']}/cancel", headers=d.headers)
        http.post("/api/v1/drivers/me/status", json={"status": "offline"}, headers=d.headers)
    assert outcomes <= {200, 409}


def test_cancel_while_the_driver_accepts_leaves_no_ghost_assignment(
    http: httpx.Client, api: str
) -> None:
    for _ in range(4):
        d = _driver_at(http, 100)
        sse = _stream(api, d)
        p, ride, _ = _request(http)
        sse.next(kind="offer")
        accept, cancel = _race(
            lambda ride=ride, d=d: http.post(
                f"/api/v1/rides/{ride['id']}/accept", headers=d.headers
            ),
            lambda ride=ride, p=p: http.post(
                f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers
            ),
        )
        assert cancel.status_code == 200
        assert _ride_status(ride["id"]) == "cancelled"
        if accept.status_code == 200:
            # accepted first, then cancelled: the driver is told
            seen = [sse.next(kind="ride_status").data["status"] for _ in range(2)]
            assert seen == ["accepted", "cancelled"]
        else:
            assert accept.json()["code"] == "ride_gone"
        # either way the driver is free again: no ghost ride holds them
        from infra.redis import get_sync_redis

        until(lambda d=d: not get_sync_redis().hget(Keys.of(Keys.DRIVER_STATE, d.id), "ride_id"))
        http.post("/api/v1/drivers/me/status", json={"status": "offline"}, headers=d.headers)
