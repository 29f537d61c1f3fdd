"""Races decided by PostgreSQL: row locks and partial unique indexes, under real concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine
from tests.factories import DROPOFF, PICKUP, Account, grant_offer, register, request_ride


def _race(n: int, fn: Any) -> list[Any]:
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(go, range(n)))


def test_of_drivers_accepting_one_ride_at_once_exactly_one_wins(client: TestClient) -> None:
    drivers = [register(client, "driver") for _ in range(6)]
    for _round in range(4):
        ride = request_ride(client, register(client, "passenger"))
        for d in drivers:  # dispatch offered the ride to all of them
            grant_offer(ride["id"], d.id)

        def accept(i: int, ride_id: str = ride["id"]) -> Any:
            return client.post(f"/api/v1/rides/{ride_id}/accept", headers=drivers[i].headers)

        answers = _race(len(drivers), accept)
        codes = Counter(r.status_code for r in answers)
        assert codes == {200: 1, 409: len(drivers) - 1}, codes
        winner = next(r.json()["driver_id"] for r in answers if r.status_code == 200)
        assert all(r.json()["code"] == "ride_taken" for r in answers if r.status_code == 409)
        with get_engine().connect() as conn:
            row = conn.execute(
                text("SELECT status, driver_id FROM rides WHERE id = :id"), {"id": ride["id"]}
            ).one()
        assert row.status == "accepted"
        assert str(row.driver_id) == winner
        # the winner is now busy: release them for the next round
        client.post(
            f"/api/v1/rides/{ride['id']}/cancel",
            headers=next(d for d in drivers if d.id == winner).headers,
        )


def test_one_driver_accepting_two_rides_at_once_gets_one(client: TestClient) -> None:
    driver = register(client, "driver")
    rides = [request_ride(client, register(client, "passenger")) for _ in range(4)]
    grant_offer(rides[0]["id"], driver.id)  # one open offer at a time
    answers = _race(
        len(rides),
        lambda i: client.post(f"/api/v1/rides/{rides[i]['id']}/accept", headers=driver.headers),
    )
    # the rides never offered to this driver do not exist for them
    assert Counter(r.status_code for r in answers) == {200: 1, 404: 3}
    with get_engine().connect() as conn:
        held = conn.execute(
            text("SELECT count(*) FROM rides WHERE driver_id = :d"), {"d": driver.id}
        ).scalar_one()
    assert held == 1


def _post_ride(client: TestClient, p: Account, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers={**p.headers, **(headers or {})},
    )


def test_a_passenger_requesting_twice_at_once_gets_one_open_ride(client: TestClient) -> None:
    p = register(client, "passenger")
    answers = _race(5, lambda _i: _post_ride(client, p))
    assert Counter(r.status_code for r in answers) == {201: 1, 409: 4}
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"ride_already_open"}
    with get_engine().connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM rides WHERE passenger_id = :p"), {"p": p.id}
            ).scalar_one()
            == 1
        )


def test_concurrent_replays_of_one_key_create_one_ride(client: TestClient) -> None:
    p = register(client, "passenger")
    answers = _race(4, lambda _i: _post_ride(client, p, {"Idempotency-Key": "tap-tap"}))
    created = [r for r in answers if r.status_code == 201]
    assert created
    assert len({r.json()["id"] for r in created}) == 1
    assert all(r.status_code in (201, 409) for r in answers)
    # once the first has committed, every retry is a faithful replay
    replay = _post_ride(client, p, {"Idempotency-Key": "tap-tap"})
    assert replay.status_code == 201
    assert replay.json()["id"] == created[0].json()["id"]
    with get_engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rides")).scalar_one() == 1
