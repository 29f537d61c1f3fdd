"""The trip actually travelled: jitter-filtered distance and the encoded polyline of its path."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from domain.pings import distance_m
from domain.rides import DRIVER_ACTIVE, RideStatus


class DriverStatus(StrEnum):
    """Whether a driver takes rides: `online` (in nearby search and dispatch) or
    `offline`."""

    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class PathPoint:
    t: float  # unix seconds
    lat: float
    lng: float
    accuracy: float | None = None


def travelled_distance_m(
    points: Sequence[PathPoint],
    *,
    max_accuracy_m: float = 50.0,
    min_step_m: float = 10.0,
    max_speed_ms: float = 70.0,
) -> int | None:
    """Sum of the moves between trustworthy fixes, ignoring GPS jitter.

    Fixes worse than `max_accuracy_m` are skipped. Distance is counted from an
    anchor fix to the next fix that is clearly elsewhere (further than the larger
    of `min_step_m` and the two fixes' accuracies), so a parked car whose fixes
    wander around it adds nothing. A move faster than a car can go is a glitch and
    is skipped. Returns None when fewer than two usable fixes exist.
    """
    usable = sorted(
        (p for p in points if p.accuracy is None or p.accuracy <= max_accuracy_m),
        key=lambda p: p.t,
    )
    if len(usable) < 2:
        return None
    total = 0.0
    anchor = usable[0]
    for p in usable[1:]:
        step = distance_m(anchor.lat, anchor.lng, p.lat, p.lng)
        threshold = max(min_step_m, anchor.accuracy or 0.0, p.accuracy or 0.0)
        if step < threshold:
            continue
        dt = p.t - anchor.t
        if dt > 0 and step / dt > max_speed_ms:
            continue
        total += step
        anchor = p
    return round(total)


def _encode_value(value: int) -> str:
    value = ~(value << 1) if value < 0 else value << 1
    out = []
    while value >= 0x20:
        out.append(chr((0x20 | (value & 0x1F)) + 63))
        value >>= 5
    out.append(chr(value + 63))
    return "".join(out)


def encode_polyline(points: Iterable[tuple[float, float]], precision: int = 5) -> str:
    """Google's encoded polyline algorithm (what map SDKs draw directly)."""
    factor = 10**precision
    out: list[str] = []
    prev_lat = prev_lng = 0
    for lat, lng in points:
        ilat, ilng = round(lat * factor), round(lng * factor)
        out.append(_encode_value(ilat - prev_lat))
        out.append(_encode_value(ilng - prev_lng))
        prev_lat, prev_lng = ilat, ilng
    return "".join(out)


def decode_polyline(text: str, precision: int = 5) -> list[tuple[float, float]]:
    factor = 10**precision
    coords: list[tuple[float, float]] = []
    index = lat = lng = 0
    while index < len(text):
        deltas = []
        for _ in range(2):
            shift = result = 0
            while True:
                b = ord(text[index]) - 63
                index += 1
                result |= (b & 0x1F) << shift
                shift += 5
                if b < 0x20:
                    break
            deltas.append(~(result >> 1) if result & 1 else result >> 1)
        lat += deltas[0]
        lng += deltas[1]
        coords.append((lat / factor, lng / factor))
    return coords


def eta_seconds(
    distance_to_target_m: float,
    recent_speed_ms: float | None,
    *,
    fallback_speed_ms: float,
    detour_factor: float = 1.3,
    min_speed_ms: float = 2.0,
) -> tuple[int, int]:
    """ETA from the straight-line distance to the target and the driver's recent speed.

    A car crawling or stopped (below `min_speed_ms`) is assumed to move at the
    city average again soon, so the ETA does not explode at a red light.
    Returns (seconds, road distance in metres).
    """
    road = distance_to_target_m * detour_factor
    speed = recent_speed_ms if recent_speed_ms and recent_speed_ms >= min_speed_ms else None
    speed = speed or fallback_speed_ms
    return round(road / speed), round(road)


@dataclass(frozen=True, slots=True)
class LiveRules:
    """How the live view of a ride behaves: pings' pace, ETAs, the "arriving" notice."""

    ping_interval_on_ride_s: int = 3
    ping_interval_idle_s: int = 15
    eta_interval_s: float = 5.0
    arriving_push_s: int = 120
    average_speed_kmh: float = 30.0
    detour_factor: float = 1.3


@dataclass(frozen=True, slots=True)
class Eta:
    seconds: int
    distance_m: int
    target: str  # "pickup" while the driver approaches, "dropoff" during the trip


def next_ping_in(rules: LiveRules, driver_status: str, ride_status: str) -> int:
    """Short on a ride, long while idle and online, 0 (stop) when offline."""
    if ride_status in DRIVER_ACTIVE:
        return rules.ping_interval_on_ride_s
    if driver_status == DriverStatus.ONLINE:
        return rules.ping_interval_idle_s
    return 0


def eta_toward(
    rules: LiveRules,
    ride_status: str,
    lat: float,
    lng: float,
    speed_ms: float | None,
    pickup: tuple[float, float],
    dropoff: tuple[float, float],
) -> Eta:
    """The ETA from the driver's fix to where the ride goes next: the dropoff during the
    trip, else the pickup."""
    target = "dropoff" if ride_status == RideStatus.IN_PROGRESS else "pickup"
    to_lat, to_lng = dropoff if target == "dropoff" else pickup
    seconds, road = eta_seconds(
        distance_m(lat, lng, to_lat, to_lng),
        speed_ms,
        fallback_speed_ms=rules.average_speed_kmh / 3.6,
        detour_factor=rules.detour_factor,
    )
    return Eta(seconds, road, target)


def arriving_soon(rules: LiveRules, ride_status: str, eta: Eta) -> bool:
    """Whether to tell the passenger their driver is about to arrive (the caller makes it
    once per ride): the driver is on the way to the pickup and close enough."""
    return (
        eta.target == "pickup"
        and ride_status == RideStatus.ACCEPTED
        and eta.seconds <= rules.arriving_push_s
    )
