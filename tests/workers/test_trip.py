"""The travelled path sets the final fare, and a worker stores it with the ride."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from domain.fares import compute_fare
from domain.trip import decode_polyline
from infra.db import get_engine
from infra.live.keys import Keys
from tests.factories import advance, register, request_ride
from tests.wait import until

pytestmark = pytest.mark.live_state

LAT, LNG = 52.5200, 13.4050
STEP = 0.0009  # ~100 m of latitude


def _ride_row(ride_id: str) -> Any:
    with get_engine().connect() as conn:
        return conn.execute(
            text("SELECT route_polyline, path_points, distance_m FROM rides WHERE id = :id"),
            {"id": ride_id},
        ).one()


def test_fare_from_the_travelled_path_and_the_path_stored(
    client: TestClient,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive")
    # pings before the trip starts are not part of its path
    t0 = time.time() - 300
    client.post(
        "/api/v1/drivers/me/location",
        json={"lat": LAT - STEP, "lng": LNG, "recorded_at": t0 - 20},
        headers=d.headers,
    )
    advance(client, ride["id"], d, "start")
    records = [
        {"lat": LAT + i * STEP, "lng": LNG, "recorded_at": t0 + 10 * i, "accuracy": 5}
        for i in range(11)
    ]
    # parked at the end: fixes that wander a few metres must add nothing
    records += [
        {
            "lat": LAT + 10 * STEP + (j % 2) * 0.00003,
            "lng": LNG + (j % 2) * 0.00002,
            "recorded_at": t0 + 110 + 5 * j,
            "accuracy": 8,
        }
        for j in range(1, 5)
    ]
    # a fix with awful accuracy is ignored for distance
    records.append(
        {"lat": LAT + 5 * STEP, "lng": LNG + 0.003, "recorded_at": t0 + 131, "accuracy": 400}
    )
    r = client.post("/api/v1/drivers/me/locations", json={"pings": records}, headers=d.headers)
    assert r.json()["accepted"] == len(records), r.json()
    done = advance(client, ride["id"], d, "complete")
    assert 990 <= done["distance_m"] <= 1010, done["distance_m"]
    assert done["distance_m"] != ride["distance_m"]
    expected = compute_fare(settings.fare, done["distance_m"], done["duration_s"]).total
    assert done["fare"]["amount"] == expected.amount

    row = until(lambda: (r := _ride_row(ride["id"])).route_polyline and r)
    assert row.path_points == len(records)
    points = decode_polyline(row.route_polyline)
    assert len(points) == len(records)
    assert points[0] == (round(LAT, 5), round(LNG, 5))
    shown = client.get(f"/api/v1/rides/{ride['id']}", headers=p.headers).json()
    assert shown["route_polyline"] == row.route_polyline


def test_without_a_path_the_estimate_is_used(client: TestClient) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    done = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    assert done["distance_m"] == ride["distance_m"]
    row = until(lambda: (r := _ride_row(ride["id"])).path_points is not None and r)
    assert row.path_points == 0


@pytest.mark.parametrize("redis_believes", ["arrived", "accepted"])
def test_a_start_the_hot_path_learns_of_late_loses_no_fix(
    client: TestClient, redis_believes: str
) -> None:
    """A ride's step reaches Redis late when its publish was lost (Redis restarting at the
    commit, or the API process dying right after it): the outbox repeats it a minute
    later, and meanwhile the hot path still believes the driver is on the way to the
    pickup or waiting there. Fixes are kept from the acceptance on, each with its arrival
    time, and the trip counts those that arrived after its start: none is lost, and none
    from before the start is counted."""
    from infra.redis import get_sync_redis

    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive")
    t0 = time.time() - 300
    waiting = {"lat": LAT - STEP, "lng": LNG, "recorded_at": t0 - 20}  # at the pickup
    client.post("/api/v1/drivers/me/location", json=waiting, headers=d.headers)
    advance(client, ride["id"], d, "start")
    # the start's publish lost (and the arrival's too): Redis lags behind the database
    get_sync_redis().hset(Keys.of(Keys.DRIVER_STATE, d.id), "ride_status", redis_believes)
    records = [
        {"lat": LAT + i * STEP, "lng": LNG, "recorded_at": t0 + 10 * i, "accuracy": 5}
        for i in range(11)
    ]
    r = client.post("/api/v1/drivers/me/locations", json={"pings": records}, headers=d.headers)
    assert r.json()["accepted"] == len(records), r.json()
    done = advance(client, ride["id"], d, "complete")
    assert 990 <= done["distance_m"] <= 1010, done["distance_m"]  # the pickup fix left out
    row = until(lambda: (r := _ride_row(ride["id"])).route_polyline and r)
    assert row.path_points == len(records)
