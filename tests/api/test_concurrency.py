"""Races decided by PostgreSQL: row locks and partial unique indexes, under real concurrency."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

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


def test_one_driver_never_holds_two_rides(client: TestClient) -> None:
    """Two guards, each tested: a driver holds one open offer at a time (a second cannot
    be made), so accepting several rides at once reaches one; and the database itself
    refuses a second active ride for a driver, whatever code path would try."""
    driver = register(client, "driver")
    rides = [request_ride(client, register(client, "passenger")) for _ in range(4)]
    grant_offer(rides[0]["id"], driver.id)
    with pytest.raises(AssertionError, match="another open offer"):
        grant_offer(rides[1]["id"], driver.id)
    answers = _race(
        len(rides),
        lambda i: client.post(f"/api/v1/rides/{rides[i]['id']}/accept", headers=driver.headers),
    )
    # the rides never offered to this driver do not exist for them
    assert Counter(r.status_code for r in answers) == {200: 1, 404: 3}
    with pytest.raises(IntegrityError), get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET driver_id = :d, status = 'accepted' WHERE id = :r"),
            {"d": driver.id, "r": rides[1]["id"]},
        )
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


def _ride_row(ride_id: str) -> Any:
    with get_engine().connect() as conn:
        return conn.execute(
            text("SELECT status, driver_id, fare_amount, fee_amount FROM rides WHERE id = :id"),
            {"id": ride_id},
        ).one()


def _jobs(ride_id: str, task: str) -> int:
    """Jobs of `task` written for the ride (the API's tests run no worker)."""
    with get_engine().connect() as conn:
        rows = conn.execute(
            text("SELECT task_kwargs FROM outbox WHERE task = :t"), {"t": task}
        ).all()
    return sum(1 for (kwargs,) in rows if kwargs.get("ride_id") == ride_id)


def _both(
    client: TestClient, first: tuple[str, Account, Any], second: tuple[str, Account, Any]
) -> list[Any]:
    """Two POSTs released at the same instant: (url, who, json body)."""
    calls = (first, second)
    return _race(
        2, lambda i: client.post(calls[i][0], json=calls[i][2], headers=calls[i][1].headers)
    )


def test_accept_and_cancel_at_once_end_in_one_consistent_state(client: TestClient) -> None:
    outcomes: Counter[str] = Counter()
    for _round in range(5):
        p, d = register(client, "passenger"), register(client, "driver")
        ride = request_ride(client, p)
        grant_offer(ride["id"], d.id)
        url = f"/api/v1/rides/{ride['id']}"
        accepted, cancelled = _both(
            client, (f"{url}/accept", d, None), (f"{url}/cancel", p, {"reason": "race"})
        )
        row = _ride_row(ride["id"])
        # whatever the order, the ride ends cancelled: the passenger's word stands
        assert row.status == "cancelled"
        assert cancelled.status_code == 200
        with get_engine().connect() as conn:
            offer = conn.execute(
                text("SELECT status FROM offers WHERE ride_id = :r AND driver_id = :d"),
                {"r": ride["id"], "d": d.id},
            ).scalar_one()
        if accepted.status_code == 200:  # the accept came first, then the cancel
            outcomes["accepted first"] += 1
            assert str(row.driver_id) == d.id
            assert offer == "accepted"
        else:
            outcomes["cancelled first"] += 1
            assert accepted.status_code == 409
            assert accepted.json()["code"] == "ride_gone"
            assert offer == "withdrawn"  # the cancel closed the driver's offer
        # the driver is free again either way
        nxt = request_ride(client, register(client, "passenger"))
        grant_offer(nxt["id"], d.id)
        again = client.post(f"/api/v1/rides/{nxt['id']}/accept", headers=d.headers)
        assert again.status_code == 200
    print(dict(outcomes))  # which order won is the race's; each is checked above


def test_complete_and_cancel_at_once_end_in_one_state_posted_once(client: TestClient) -> None:
    from infra.db import session_scope
    from infra.users import create_user
    from tests.factories import PASSWORD, advance, login

    email = "race-admin@example.com"
    with session_scope() as session:
        create_user(session, email=email, password=PASSWORD, name="A", role="admin")
    admin = login(client, email, "", "admin")
    for _round in range(5):
        p, d = register(client, "passenger"), register(client, "driver")
        ride = request_ride(client, p)
        advance(client, ride["id"], d, "accept", "arrive", "start")
        url = f"/api/v1/rides/{ride['id']}"
        completed, cancelled = _both(
            client, (f"{url}/complete", d, None), (f"{url}/cancel", admin, {"reason": "race"})
        )
        codes = sorted([completed.status_code, cancelled.status_code])
        assert codes == [200, 409], codes  # one wins; the other is told the ride moved on
        row = _ride_row(ride["id"])
        assert row.status == ("completed" if completed.status_code == 200 else "cancelled")
        assert (row.fare_amount is not None) == (row.status == "completed")
        # one ending, so one ledger posting and one settlement job, whichever won
        assert _jobs(ride["id"], "ledger.post_ride") == 1
