from __future__ import annotations

import math

import pytest

from domain.pings import (
    InvalidPing,
    LastFix,
    PingRules,
    check,
    from_background_geolocation,
    from_native,
    from_osmand,
    parse_time,
)
from domain.trip import (
    PathPoint,
    decode_polyline,
    encode_polyline,
    eta_seconds,
    travelled_distance_m,
)

NOW = 1_800_000_000.0


def test_times_in_every_form() -> None:
    iso = parse_time("2027-01-15T08:00:00Z")
    assert parse_time("2027-01-15T08:00:00+00:00") == iso
    assert parse_time("2027-01-15T09:00:00+01:00") == iso
    assert parse_time(iso) == iso
    assert parse_time(int(iso * 1000)) == iso  # milliseconds
    assert parse_time(str(int(iso))) == iso
    for bad in ("", None, "soon", True, float("nan")):
        with pytest.raises(InvalidPing):
            parse_time(bad)


def test_background_geolocation_record() -> None:
    p = from_background_geolocation(
        {
            "timestamp": "2027-01-15T08:00:00.123Z",
            "uuid": "u-1",
            "is_moving": True,
            "odometer": 12.5,
            "coords": {
                "latitude": 1.5,
                "longitude": 2.5,
                "accuracy": 7,
                "speed": -1,
                "heading": -1,
                "altitude": 30,
            },
            "battery": {"level": 0.42},
            "activity": {"type": "in_vehicle"},
        }
    )
    assert (p.lat, p.lng, p.accuracy, p.altitude) == (1.5, 2.5, 7.0, 30.0)
    assert p.speed is None
    assert p.heading is None
    assert p.uuid == "u-1"
    assert p.battery == 0.42
    assert p.activity == "in_vehicle"
    assert p.is_moving is True
    assert p.odometer == 12.5
    with pytest.raises(InvalidPing) as err:
        from_background_geolocation(
            {
                "timestamp": "2027-01-15T08:00:00Z",
                "coords": {"latitude": 1, "longitude": 2, "speed": -5},
            }
        )
    assert err.value.reason == "negative_speed"


def test_osmand_speed_is_knots_and_battery_percent() -> None:
    p = from_osmand(
        {
            "lat": "1",
            "lon": "2",
            "timestamp": "1800000000",
            "speed": "10",
            "bearing": "90",
            "batt": "50",
        }
    )
    assert math.isclose(p.speed or 0, 5.14444, rel_tol=1e-5)
    assert p.heading == 90
    assert p.battery == 0.5
    # no timestamp in the URL: the time it was received
    assert from_osmand({"lat": "1", "lon": "2"}, received_at=NOW).recorded_at == NOW
    with pytest.raises(InvalidPing):
        from_osmand({"lat": "1", "lon": "2"})


def test_rules() -> None:
    rules = PingRules()
    ok = from_native({"lat": 0, "lng": 0, "recorded_at": NOW})
    check(ok, NOW, rules)
    with pytest.raises(InvalidPing, match="future"):
        check(from_native({"lat": 0, "lng": 0, "recorded_at": NOW + 121}), NOW, rules)
    with pytest.raises(InvalidPing, match="old"):
        check(from_native({"lat": 0, "lng": 0, "recorded_at": NOW - 7 * 3600}), NOW, rules)
    # 1 km in 10 s is 100 m/s
    with pytest.raises(InvalidPing) as err:
        check(
            from_native({"lat": 0.009, "lng": 0, "recorded_at": NOW}),
            NOW,
            rules,
            LastFix(0, 0, NOW - 10),
        )
    assert err.value.reason == "impossible_jump"
    check(
        from_native({"lat": 0.009, "lng": 0, "recorded_at": NOW}),
        NOW,
        rules,
        LastFix(0, 0, NOW - 60),
    )


def test_distance_ignores_jitter_glitches_and_bad_fixes() -> None:
    line = [PathPoint(i * 10.0, i * 0.0009, 0.0, 5) for i in range(11)]  # ~1000 m
    assert 995 <= (travelled_distance_m(line) or 0) <= 1005
    parked = [PathPoint(200 + j, 0.009 + (j % 2) * 0.00003, 0.0, 6) for j in range(50)]
    assert travelled_distance_m(line + parked) == travelled_distance_m(line)
    glitch = [*line, PathPoint(101, 0.5, 0.5, 5)]  # 55 km in 1 s
    assert travelled_distance_m(glitch) == travelled_distance_m(line)
    blurry = [*line, PathPoint(105, 0.02, 0.02, 500)]
    assert travelled_distance_m(blurry) == travelled_distance_m(line)
    assert travelled_distance_m(line[:1]) is None


def test_polyline_round_trip_and_known_value() -> None:
    # the example of Google's documentation
    pts = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    assert encode_polyline(pts) == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert decode_polyline("_p~iF~ps|U_ulLnnqC_mqNvxq`@") == pts
    assert encode_polyline([]) == ""


def test_eta() -> None:
    seconds, road = eta_seconds(1000, 10.0, fallback_speed_ms=5.0, detour_factor=1.0)
    assert (seconds, road) == (100, 1000)
    # stopped at a light: the city average, not infinity
    assert eta_seconds(1000, 0.0, fallback_speed_ms=5.0, detour_factor=1.0)[0] == 200


def test_the_eta_goes_to_the_pickup_then_to_the_dropoff() -> None:
    from domain.trip import LiveRules, eta_toward

    rules = LiveRules(average_speed_kmh=36.0, detour_factor=1.0)  # 10 m/s
    pickup, dropoff = (52.0, 13.0), (52.1, 13.0)
    here = (52.0 + 1000 / 111_195.08, 13.0)  # 1 km north of the pickup
    to_pickup = eta_toward(rules, "accepted", *here, None, pickup, dropoff)
    assert (to_pickup.target, to_pickup.seconds, to_pickup.distance_m) == ("pickup", 100, 1000)
    to_dropoff = eta_toward(rules, "in_progress", *here, 20.0, pickup, dropoff)
    assert to_dropoff.target == "dropoff"
    assert to_dropoff.distance_m == pytest.approx(10_119, abs=2)
    assert to_dropoff.seconds == round(to_dropoff.distance_m / 20.0)


@pytest.mark.parametrize(
    ("status", "target", "seconds", "told"),
    [
        ("accepted", "pickup", 120, True),
        ("accepted", "pickup", 121, False),
        ("arrived", "pickup", 10, False),  # already there
        ("in_progress", "dropoff", 10, False),
    ],
)
def test_the_passenger_is_told_the_driver_is_arriving_only_on_the_way_and_close(
    status: str, target: str, seconds: int, told: bool
) -> None:
    from domain.trip import Eta, LiveRules, arriving_soon

    assert arriving_soon(LiveRules(arriving_push_s=120), status, Eta(seconds, 0, target)) is told


@pytest.mark.parametrize(
    ("driver", "ride", "interval"),
    [
        ("online", "accepted", 3),
        ("online", "in_progress", 3),
        ("online", "", 15),
        ("online", "completed", 15),
        ("offline", "", 0),
    ],
)
def test_the_next_ping_comes_sooner_on_a_ride(driver: str, ride: str, interval: int) -> None:
    from domain.trip import LiveRules, next_ping_in

    assert next_ping_in(LiveRules(), driver, ride) == interval


def test_the_status_sets_are_the_enums_own() -> None:
    from domain.rides import DRIVER_ACTIVE, TERMINAL, RideStatus

    assert {s for s in RideStatus if s.terminal} == TERMINAL
    assert {s for s in RideStatus if s.driver_bound} == DRIVER_ACTIVE
    assert RideStatus.awaiting_pickup_set() == {RideStatus.ACCEPTED, RideStatus.ARRIVED}
    assert {s for s in RideStatus if s.ended_unfinished} == {"cancelled", "no_show"}
    assert {s for s in RideStatus if s.gone} == {"cancelled", "expired"}
