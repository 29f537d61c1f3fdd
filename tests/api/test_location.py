"""Pings in every format the apps send, validation, dedupe, status, nearby and polling."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.geo import cell_of
from infra.live.keys import Keys, ride_stream
from infra.redis import get_sync_redis
from tests.factories import Account, advance, register, request_ride

pytestmark = pytest.mark.live_state

LAT, LNG = 52.5200, 13.4050


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _FROM_NOW:  # noqa: N801 - reads as a value in the parameter table
    """A timestamp `seconds` from the moment the test runs."""

    seconds: float

    def at(self) -> str:
        return iso(time.time() + self.seconds)


def native(ts: float | None = None, **over: Any) -> dict[str, Any]:
    body = {
        "lat": LAT,
        "lng": LNG,
        "recorded_at": iso(ts or time.time()),
        "speed": 4.0,
        "heading": 90.0,
        "accuracy": 5.0,
    }
    body.update(over)
    return body


def bg(ts: float, uuid: str, lat: float = LAT, lng: float = LNG, **coords: Any) -> dict[str, Any]:
    """A react-native-background-geolocation record, as the SDK posts it."""
    c = {
        "latitude": lat,
        "longitude": lng,
        "accuracy": 8.5,
        "speed": 3.2,
        "heading": 45.0,
        "altitude": 34.0,
    }
    c.update(coords)
    return {
        "timestamp": iso(ts),
        "uuid": uuid,
        "is_moving": True,
        "odometer": 1234.5,
        "coords": c,
        "battery": {"level": 0.81, "is_charging": False},
        "activity": {"type": "in_vehicle", "confidence": 100},
        "extras": {},
    }


def online(client: TestClient, d: Account) -> None:
    r = client.post("/api/v1/drivers/me/status", json={"status": "online"}, headers=d.headers)
    assert r.status_code == 200
    assert r.json() == {"status": "online", "next_ping_in_s": 15}


def pos(driver_id: str) -> dict[str, str]:
    return get_sync_redis().hgetall(Keys.of(Keys.POSITION, driver_id))  # type: ignore[return-value]


def test_a_single_ping_moves_the_driver(client: TestClient) -> None:
    d = register(client, "driver")
    online(client, d)
    now = time.time()
    r = client.post("/api/v1/drivers/me/location", json=native(now), headers=d.headers)
    assert r.status_code == 202
    assert r.json() == {
        "accepted": 1,
        "rejected": 0,
        "duplicates": 0,
        "reasons": [],
        "next_ping_in_s": 15,
    }
    stored = pos(d.id)
    assert float(stored["lat"]) == LAT
    assert float(stored["lng"]) == LNG
    assert stored["at"] == iso(now)
    cell = Keys.of(Keys.GEO, cell_of(LAT, LNG))
    assert stored["cell"] == cell_of(LAT, LNG)
    assert get_sync_redis().geopos(cell, d.id)[0] is not None


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"lat": 91}, "lat_out_of_range"),
        ({"lng": -181}, "lng_out_of_range"),
        ({"speed": -3}, "negative_speed"),
        ({"accuracy": -1}, "negative_accuracy"),
        ({"heading": 400}, "invalid_heading"),
        ({"recorded_at": "yesterday-ish"}, "invalid_time"),
        # seconds from now, read when the test runs (not when it is collected)
        ({"recorded_at": _FROM_NOW(3600)}, "timestamp_in_future"),
        ({"recorded_at": _FROM_NOW(-7 * 86400)}, "timestamp_too_old"),
        ({"lat": None}, "missing_field"),
        ({"lat": "north"}, "invalid_number"),
    ],
)
def test_impossible_single_pings_are_422_with_the_reason(
    client: TestClient, override: dict[str, Any], code: str
) -> None:
    d = register(client, "driver")
    override = {k: v.at() if isinstance(v, _FROM_NOW) else v for k, v in override.items()}
    r = client.post("/api/v1/drivers/me/location", json=native(**override), headers=d.headers)
    assert r.status_code == 422
    assert r.json()["code"] == code
    assert pos(d.id) == {}


def test_nan_and_infinity_are_refused(client: TestClient) -> None:
    d = register(client, "driver")
    for bad in ("NaN", "Infinity", "-Infinity"):
        body = f'{{"lat": {bad}, "lng": 13.4, "recorded_at": {time.time()}}}'
        r = client.post(
            "/api/v1/drivers/me/location",
            content=body,
            headers={**d.headers, "content-type": "application/json"},
        )
        assert r.status_code == 422
        assert r.json()["code"] == "not_finite"


def test_a_jump_faster_than_a_car_is_refused(client: TestClient) -> None:
    d = register(client, "driver")
    now = time.time()
    assert (
        client.post(
            "/api/v1/drivers/me/location", json=native(now - 10), headers=d.headers
        ).status_code
        == 202
    )
    # 10 km in 10 s
    r = client.post(
        "/api/v1/drivers/me/location", json=native(now, lat=LAT + 0.09), headers=d.headers
    )
    assert r.status_code == 422
    assert r.json()["code"] == "impossible_jump"
    assert float(pos(d.id)["lat"]) == LAT
    # 100 m in 10 s is a car
    r = client.post(
        "/api/v1/drivers/me/location", json=native(now, lat=LAT + 0.0009), headers=d.headers
    )
    assert r.status_code == 202


def test_background_geolocation_batch_with_a_bad_record_is_2xx(client: TestClient) -> None:
    d = register(client, "driver")
    now = time.time()
    records = [
        bg(now - 30, "a"),
        bg(now - 20, "b", lat=95.0),  # broken fix
        bg(now - 10, "c", lat=LAT + 0.0005, speed=-1, heading=-1),  # -1 = unknown
        {"coords": {"latitude": LAT}},  # no longitude, no timestamp
    ]
    r = client.post("/api/v1/drivers/me/locations", json={"location": records}, headers=d.headers)
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 2, 0)
    assert [(x["index"], x["reason"]) for x in body["reasons"]] == [
        (1, "lat_out_of_range"),
        (3, "missing_field"),
    ]
    stored = pos(d.id)
    assert float(stored["lat"]) == LAT + 0.0005
    assert stored["speed"] == ""
    assert stored["heading"] == ""
    # the single-record form
    r = client.post(
        "/api/v1/drivers/me/locations", json={"location": bg(now, "d")}, headers=d.headers
    )
    assert r.json()["accepted"] == 1


def test_replays_count_once_and_old_records_never_move_the_driver_back(
    client: TestClient,
) -> None:
    d = register(client, "driver")
    now = time.time()
    first = [bg(now - 20, "u1"), bg(now - 10, "u2", lat=LAT + 0.001)]
    assert (
        client.post(
            "/api/v1/drivers/me/locations", json={"location": first}, headers=d.headers
        ).json()["accepted"]
        == 2
    )
    # the SDK retries the same upload, plus one record older than the newest
    again = [*first, bg(now - 15, "u3", lat=LAT + 0.0005)]
    body = client.post(
        "/api/v1/drivers/me/locations", json={"location": again}, headers=d.headers
    ).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 2, 0)
    assert float(pos(d.id)["lat"]) == LAT + 0.001  # still the newest fix
    # native pings without uuid are deduped by timestamp
    ts = now - 5
    one = client.post(
        "/api/v1/drivers/me/location", json=native(ts, lat=LAT + 0.001), headers=d.headers
    ).json()
    two = client.post(
        "/api/v1/drivers/me/location", json=native(ts, lat=LAT + 0.001), headers=d.headers
    ).json()
    assert (one["accepted"], two["accepted"], two["duplicates"]) == (1, 0, 1)


def test_native_batch_and_shapes(client: TestClient) -> None:
    d = register(client, "driver")
    now = time.time()
    pings = [native(now - i, lat=LAT + i * 0.0001) for i in range(5)]
    r = client.post("/api/v1/drivers/me/locations", json={"pings": pings}, headers=d.headers)
    assert r.status_code == 202
    assert r.json()["accepted"] == 5
    assert float(pos(d.id)["lat"]) == LAT  # the newest is i=0
    bad = client.post("/api/v1/drivers/me/locations", json={"nothing": 1}, headers=d.headers)
    assert bad.status_code == 422
    empty = client.post("/api/v1/drivers/me/locations", json={"pings": []}, headers=d.headers)
    assert empty.status_code == 202
    assert empty.json()["accepted"] == 0


def test_only_drivers_ping(client: TestClient) -> None:
    p = register(client, "passenger")
    r = client.post("/api/v1/drivers/me/location", json=native(), headers=p.headers)
    assert r.status_code == 403
    r = client.post("/api/v1/drivers/me/location", json=native())
    assert r.status_code == 401


def test_per_driver_rate_limit(client: TestClient, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(settings, "ping_rate_limit", 3)
    d = register(client, "driver")
    now = time.time()
    codes = [
        client.post(
            "/api/v1/drivers/me/location", json=native(now - 10 + i), headers=d.headers
        ).status_code
        for i in range(4)
    ]
    assert codes == [202, 202, 202, 429]
    r = client.post("/api/v1/drivers/me/location", json=native(now), headers=d.headers)
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= settings.ping_rate_window_s
    # another driver is not affected
    other = register(client, "driver")
    assert (
        client.post(
            "/api/v1/drivers/me/location", json=native(now), headers=other.headers
        ).status_code
        == 202
    )


def test_body_cap(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    d = register(client, "driver")
    big = [native() for _ in range(settings.max_body_bytes // 80)]
    r = client.post("/api/v1/drivers/me/locations", json={"pings": big}, headers=d.headers)
    assert r.status_code == 413


def test_next_ping_follows_the_drivers_state(client: TestClient) -> None:
    d = register(client, "driver")
    p = register(client, "passenger")
    now = time.time()

    def cadence(ts: float) -> int:
        r = client.post("/api/v1/drivers/me/location", json=native(ts), headers=d.headers)
        return int(r.json()["next_ping_in_s"])

    assert cadence(now - 50) == 0  # offline: stop
    online(client, d)
    assert cadence(now - 40) == 15  # idle
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    assert cadence(now - 30) == 3  # on a ride
    r = client.post("/api/v1/drivers/me/status", json={"status": "offline"}, headers=d.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "driver_on_ride"
    advance(client, ride["id"], d, "arrive", "start", "complete")
    assert cadence(now - 20) == 15  # the ride ended
    r = client.post("/api/v1/drivers/me/status", json={"status": "offline"}, headers=d.headers)
    assert r.json() == {"status": "offline", "next_ping_in_s": 0}
    assert cadence(now - 10) == 0
    bad = client.post("/api/v1/drivers/me/status", json={"status": "asleep"}, headers=d.headers)
    assert bad.status_code == 422


def test_nearby_lists_online_idle_fresh_drivers_by_distance(client: TestClient) -> None:
    p = register(client, "passenger")
    near, far, off, busy = (register(client, "driver") for _ in range(4))
    now = time.time()
    for d, dlat in ((near, 0.001), (far, 0.01), (off, 0.0005), (busy, 0.0002)):
        if d is not off:
            online(client, d)
        client.post(
            "/api/v1/drivers/me/location", json=native(now, lat=LAT + dlat), headers=d.headers
        )
    ride = request_ride(client, register(client, "passenger"))
    advance(client, ride["id"], busy, "accept")
    r = client.get(
        "/api/v1/drivers/nearby",
        params={"lat": LAT, "lng": LNG, "radius_m": 5000},
        headers=p.headers,
    )
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["driver_id"] for i in items] == [near.id, far.id]
    assert 100 <= items[0]["distance_m"] <= 120
    assert set(items[0]) >= {
        "driver_id",
        "lat",
        "lng",
        "heading",
        "speed",
        "accuracy",
        "recorded_at",
        "distance_m",
    }
    small = client.get(
        "/api/v1/drivers/nearby",
        params={"lat": LAT, "lng": LNG, "radius_m": 500, "limit": 5},
        headers=p.headers,
    ).json()["items"]
    assert [i["driver_id"] for i in small] == [near.id]
    assert (
        client.get(
            "/api/v1/drivers/nearby", params={"lat": LAT, "lng": LNG}, headers=near.headers
        ).status_code
        == 403
    )
    assert (
        client.get(
            "/api/v1/drivers/nearby", params={"lat": 100, "lng": LNG}, headers=p.headers
        ).status_code
        == 422
    )


def test_silent_drivers_drop_out(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    from infra.live.positions import Positions

    p = register(client, "passenger")
    d = register(client, "driver")
    online(client, d)
    old = time.time() - settings.driver_stale_s - 5
    client.post("/api/v1/drivers/me/location", json=native(old), headers=d.headers)
    items = client.get(
        "/api/v1/drivers/nearby", params={"lat": LAT, "lng": LNG}, headers=p.headers
    ).json()["items"]
    assert items == []  # filtered at once, before any sweep
    swept = Positions(get_sync_redis()).sweep_stale(time.time() - settings.driver_stale_s)
    assert swept == 1
    assert get_sync_redis().zscore(Keys.of(Keys.SEEN, cell_of(LAT, LNG)), d.id) is None
    assert get_sync_redis().geopos(Keys.of(Keys.GEO, cell_of(LAT, LNG)), d.id) == [None]


def test_polling_with_etag(client: TestClient) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    stranger = register(client, "passenger")
    ride = request_ride(client, p)
    url = f"/api/v1/rides/{ride['id']}/driver-location"
    assert client.get(url, headers=p.headers).status_code == 404  # no driver yet
    advance(client, ride["id"], d, "accept")
    now = time.time()
    client.post("/api/v1/drivers/me/location", json=native(now - 5), headers=d.headers)
    r = client.get(url, headers=p.headers)
    assert r.status_code == 200
    etag = r.headers["etag"]
    assert r.json()["driver_id"] == d.id
    assert r.json()["recorded_at"] == iso(now - 5)
    same = client.get(url, headers={**p.headers, "If-None-Match": etag})
    assert same.status_code == 304
    assert same.content == b""
    client.post(
        "/api/v1/drivers/me/location", json=native(now, lat=LAT + 0.0003), headers=d.headers
    )
    moved = client.get(url, headers={**p.headers, "If-None-Match": etag})
    assert moved.status_code == 200
    assert moved.headers["etag"] != etag
    assert client.get(url, headers=d.headers).status_code == 200
    assert client.get(url, headers=stranger.headers).status_code == 404
    advance(client, ride["id"], d, "arrive", "start", "complete")
    after = client.get(url, headers=p.headers)
    assert after.status_code == 404  # the driver's whereabouts are private again
    assert after.json()["code"] == "no_position"


def test_device_key_and_osmand(client: TestClient) -> None:
    d = register(client, "driver")
    online(client, d)
    key = client.post("/api/v1/drivers/me/device-key", headers=d.headers).json()["device_key"]
    assert len(key) >= 24
    now = int(time.time())
    # OsmAnd / Traccar: query parameters, speed in knots, timestamp in seconds
    r = client.get(
        "/api/v1/osmand",
        params={
            "id": key,
            "lat": LAT,
            "lon": LNG,
            "timestamp": now - 20,
            "speed": 10,
            "bearing": 180,
            "altitude": 30,
            "accuracy": 12,
            "batt": 76,
        },
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    stored = pos(d.id)
    assert abs(float(stored["speed"]) - 5.14444) < 1e-3  # 10 knots in m/s
    assert float(stored["heading"]) == 180
    # milliseconds and ISO timestamps, POSTed as a form
    r = client.post(
        "/api/v1/osmand",
        data={"id": key, "lat": LAT + 0.0001, "lon": LNG, "timestamp": (now - 10) * 1000},
    )
    assert r.json()["accepted"] == 1
    r = client.post(
        f"/api/v1/osmand?id={key}&lat={LAT + 0.0002}&lon={LNG}&timestamp={iso(now - 5)}"
    )
    assert r.json()["accepted"] == 1
    assert float(pos(d.id)["lat"]) == LAT + 0.0002
    # Traccar Client 9's JSON body
    r = client.post(
        "/api/v1/osmand", json={"location": bg(now - 1, "t9", lat=LAT + 0.0003), "device_id": key}
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    # a bad fix is still a 200 (the app must not stall its queue), with the reason
    r = client.get("/api/v1/osmand", params={"id": key, "lat": 123, "lon": LNG, "timestamp": now})
    assert r.status_code == 200
    assert r.json()["reasons"][0]["reason"] == "lat_out_of_range"
    # rotating the key: the old one stops working
    new = client.post("/api/v1/drivers/me/device-key", headers=d.headers).json()["device_key"]
    r = client.get("/api/v1/osmand", params={"id": key, "lat": LAT, "lon": LNG, "timestamp": now})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_device_key"
    r = client.get(
        "/api/v1/osmand", params={"id": new, "lat": LAT + 0.0003, "lon": LNG, "timestamp": now}
    )
    assert r.status_code == 200


def test_device_key_survives_a_cold_redis(client: TestClient) -> None:
    d = register(client, "driver")
    key = client.post("/api/v1/drivers/me/device-key", headers=d.headers).json()["device_key"]
    for k in get_sync_redis().scan_iter("devkey:*"):
        get_sync_redis().delete(k)
    r = client.get(
        "/api/v1/osmand", params={"id": key, "lat": LAT, "lon": LNG, "timestamp": int(time.time())}
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1


def test_every_accepted_fix_of_a_batch_reaches_the_rides_stream_in_order(
    client: TestClient,
) -> None:
    """A batch after a tunnel is the driver's route: followers get each accepted fix, not
    only the newest. A late fix from before the driver's position is there too, marked
    `live: false` (for the trail, not the marker); a duplicate or refused fix is not."""
    p, d = register(client, "passenger"), register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    now = time.time()
    stream = ride_stream(ride["id"])

    def fixes_seen() -> list[tuple[str, bool]]:
        entries = get_sync_redis().xrange(stream)
        out = []
        for _, fields in entries:  # type: ignore[union-attr]
            if fields["e"] == "location":
                data = json.loads(fields["d"])
                out.append((data["recorded_at"], data["live"]))
        return out

    r = client.post(
        "/api/v1/drivers/me/locations",
        json={
            "location": [bg(now - 30 + i * 5, f"tunnel-{i}", lat=LAT + i * 1e-4) for i in range(4)]
        },
        headers=d.headers,
    )
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 4
    assert fixes_seen() == [(iso(now - 30 + i * 5), True) for i in range(4)]
    # the same batch again (the SDK's retry) publishes nothing; a late fix is the trail's
    late = bg(now - 40, "late-one", lat=LAT - 1e-4)
    again = [bg(now - 30 + i * 5, f"tunnel-{i}", lat=LAT + i * 1e-4) for i in range(4)]
    r = client.post(
        "/api/v1/drivers/me/locations", json={"location": [*again, late]}, headers=d.headers
    )
    assert r.json()["accepted"] == 1
    assert fixes_seen()[4:] == [(iso(now - 40), False)]
    # the driver's position is still the newest fix
    assert float(pos(d.id)["lat"]) == pytest.approx(LAT + 3e-4)


def test_a_trip_fix_whose_second_step_never_ran_reaches_the_stream_on_its_resend(
    client: TestClient, settings: Any
) -> None:
    """The ping's first step (the driver's script) accepts and records a fix; the ride's
    stream is its second step. A process killed between them leaves the fix accepted but
    unpublished, and the app's resend is a duplicate: the resend publishes it, once.
    A fix the device marked invalid, sent again, is never published."""
    import asyncio

    from domain.pings import Ping
    from infra.live.positions import PositionsAsync
    from infra.redis import make_async_redis

    p, d = register(client, "passenger"), register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    # times as the API reads them back from RFC 3339 (microseconds), so the resend's is the
    # very time the first step stored
    now = datetime.fromisoformat(iso(time.time())).timestamp()

    def fixes_seen() -> list[tuple[str, bool]]:
        out = []
        for _, fields in get_sync_redis().xrange(ride_stream(ride["id"])):
            if fields["e"] == "location":
                data = json.loads(fields["d"])
                out.append((data["recorded_at"], data["live"]))
        return out

    class Killed(BaseException):
        """The process dying between the two steps."""

    async def first_step_only(fixes: list[Ping]) -> None:
        redis_ = make_async_redis()
        positions = PositionsAsync(redis_)

        async def killed(*_args: Any) -> str:
            raise Killed

        positions._spread = killed  # type: ignore[method-assign]
        try:
            with pytest.raises(Killed):
                await positions.apply_pings(
                    d.id, fixes, settings.fixes, rate_limit=100, rate_window_s=10
                )
        finally:
            await redis_.aclose()

    asyncio.run(
        first_step_only(
            [
                Ping(lat=LAT, lng=LNG, recorded_at=now - 10, uuid="cut-0"),
                Ping(lat=LAT, lng=LNG, recorded_at=now - 9, uuid="bad-0", valid=False),
            ]
        )
    )
    assert float(pos(d.id)["ts"]) == pytest.approx(now - 10)  # the first step was done
    assert fixes_seen() == []

    def send(*records: dict[str, Any]) -> dict[str, Any]:
        r = client.post(
            "/api/v1/drivers/me/locations", json={"location": list(records)}, headers=d.headers
        )
        assert r.status_code == 202, r.text
        return r.json()  # type: ignore[no-any-return]

    bad = bg(now - 9, "bad-0")
    resent = send(bg(now - 10, "cut-0"), bad, bg(now - 5, "next-1"))
    assert (resent["accepted"], resent["duplicates"]) == (1, 2)
    assert fixes_seen() == [(iso(now - 10), True), (iso(now - 5), True)]
    # sent once more (this answer lost too): nothing is published twice
    send(bg(now - 10, "cut-0"), bad, bg(now - 5, "next-1"))
    assert fixes_seen() == [(iso(now - 10), True), (iso(now - 5), True)]
