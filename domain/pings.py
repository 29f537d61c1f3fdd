"""Location pings: the formats real tracking SDKs post, and the rules that keep bad fixes out.

Formats understood (all normalised to `Ping`):
- native: `{lat, lng, recorded_at, heading?, speed?, accuracy?, uuid?}`, speed in m/s;
- react-native-background-geolocation (and Traccar Client 9, which is built on it):
  `{"timestamp": ISO, "uuid", "is_moving", "odometer", "coords": {"latitude",
  "longitude", "accuracy", "speed" (m/s, -1 unknown), "heading" (-1 unknown),
  "altitude"}, "battery": {"level": 0..1}, "activity": {"type"}}`;
- OsmAnd query parameters: `lat`, `lon`, `timestamp` (s, ms or ISO), `speed` in
  knots, `bearing`, `altitude`, `accuracy`, `batt` (percent).

A record that cannot be parsed or breaks a rule is rejected with a reason; the
caller decides whether that is a 422 (one native ping) or a count in a 2xx
(batches and SDK uploads, which stop their whole queue on any non-2xx).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from domain.geo import EARTH_RADIUS_M

KNOT_MS = 0.514444
#: the latitude limit of Redis GEO (web-mercator): fixes beyond it cannot be indexed
MAX_GEO_LAT = 85.05112878


@dataclass(frozen=True, slots=True)
class Ping:
    lat: float
    lng: float
    recorded_at: float  # unix seconds, UTC
    heading: float | None = None
    speed: float | None = None  # m/s
    accuracy: float | None = None  # metres
    altitude: float | None = None
    uuid: str | None = None
    battery: float | None = None  # 0..1
    is_moving: bool | None = None
    activity: str | None = None
    odometer: float | None = None
    valid: bool = True  # the device's own verdict (OsmAnd `valid`); invalid: never shown


@dataclass(frozen=True, slots=True)
class PingRules:
    max_future_s: float = 120.0  # device clocks drift; beyond this the clock is wrong
    max_age_s: float = 6 * 3600.0  # SDKs buffer while offline; older is no use to anyone
    max_speed_ms: float = 70.0  # 252 km/h: faster than a car goes
    jump_slack_m: float = 200.0  # GPS error allowance when judging jumps


class InvalidPing(ValueError):
    """`reason` is a short machine code, `detail` says what was wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _num(value: Any, name: str, *, optional: bool = True) -> float | None:
    if value is None or value == "":
        if optional:
            return None
        raise InvalidPing("missing_field", f"{name} is required")
    if isinstance(value, bool):
        raise InvalidPing("invalid_number", f"{name} must be a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidPing("invalid_number", f"{name} must be a number") from None
    if not math.isfinite(number):
        raise InvalidPing("not_finite", f"{name} must be a finite number")
    return number


def parse_time(value: Any, name: str = "recorded_at") -> float:
    """RFC 3339 / ISO 8601 text, or unix seconds, or unix milliseconds."""
    if value is None or value == "":
        raise InvalidPing("missing_field", f"{name} is required")
    if isinstance(value, bool):
        raise InvalidPing("invalid_time", f"{name} must be a time")
    if isinstance(value, int | float) or (isinstance(value, str) and _looks_numeric(value)):
        number = float(value)
        if not math.isfinite(number):
            raise InvalidPing("invalid_time", f"{name} must be a time")
        return number / 1000.0 if number > 1e11 else number  # ms since 1973 vs s
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidPing("invalid_time", f"{name} is not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise InvalidPing("invalid_time", f"{name} must be a time")


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _optional_nonnegative(value: float | None, name: str) -> float | None:
    if value is not None and value < 0:
        raise InvalidPing(f"negative_{name}", f"{name} must not be negative")
    return value


def _heading(value: float | None) -> float | None:
    if value is None:
        return None
    if not 0 <= value <= 360:
        raise InvalidPing("invalid_heading", "heading must be within 0..360 degrees")
    return value % 360


def _coords(lat: float | None, lng: float | None) -> tuple[float, float]:
    if lat is None or lng is None:
        raise InvalidPing("missing_field", "lat and lng are required")
    if not -MAX_GEO_LAT <= lat <= MAX_GEO_LAT:
        raise InvalidPing(
            "lat_out_of_range", f"lat must be within -{MAX_GEO_LAT}..{MAX_GEO_LAT} (map limit)"
        )
    if not -180 <= lng <= 180:
        raise InvalidPing("lng_out_of_range", "lng must be within -180..180")
    return lat, lng


def _text(value: Any, limit: int = 100) -> str | None:
    if value is None:
        return None
    return str(value)[:limit]


def from_native(raw: Any) -> Ping:
    if not isinstance(raw, Mapping):
        raise InvalidPing("not_an_object", "a ping must be a JSON object")
    lat, lng = _coords(_num(raw.get("lat"), "lat"), _num(raw.get("lng"), "lng"))
    return Ping(
        lat=lat,
        lng=lng,
        recorded_at=parse_time(raw.get("recorded_at")),
        heading=_heading(_num(raw.get("heading"), "heading")),
        speed=_optional_nonnegative(_num(raw.get("speed"), "speed"), "speed"),
        accuracy=_optional_nonnegative(_num(raw.get("accuracy"), "accuracy"), "accuracy"),
        altitude=_num(raw.get("altitude"), "altitude"),
        uuid=_text(raw.get("uuid")),
    )


def from_background_geolocation(raw: Any) -> Ping:
    """One record of react-native-background-geolocation (also Traccar Client 9's JSON)."""
    if not isinstance(raw, Mapping):
        raise InvalidPing("not_an_object", "a location must be a JSON object")
    coords = raw.get("coords")
    if not isinstance(coords, Mapping):
        raise InvalidPing("missing_field", "coords (with latitude and longitude) is required")
    lat, lng = _coords(
        _num(coords.get("latitude"), "coords.latitude"),
        _num(coords.get("longitude"), "coords.longitude"),
    )
    speed = _num(coords.get("speed"), "coords.speed")
    heading = _num(coords.get("heading"), "coords.heading")
    battery = raw.get("battery")
    level = _num(battery.get("level"), "battery.level") if isinstance(battery, Mapping) else None
    activity = raw.get("activity")
    return Ping(
        lat=lat,
        lng=lng,
        recorded_at=parse_time(raw.get("timestamp"), "timestamp"),
        # the SDK says -1 for "unknown"; other negatives are broken fixes
        heading=None if heading == -1 else _heading(heading),
        speed=None if speed == -1 else _optional_nonnegative(speed, "speed"),
        accuracy=_optional_nonnegative(_num(coords.get("accuracy"), "coords.accuracy"), "accuracy"),
        altitude=_num(coords.get("altitude"), "coords.altitude"),
        uuid=_text(raw.get("uuid")),
        battery=None if level is None or level < 0 else min(level, 1.0),
        is_moving=bool(raw["is_moving"]) if "is_moving" in raw else None,
        activity=_text(activity.get("type")) if isinstance(activity, Mapping) else None,
        odometer=_num(raw.get("odometer"), "odometer"),
    )


def _osmand_location(params: Mapping[str, Any]) -> tuple[Any, Any]:
    """`lat`/`lon`, or `location=lat,lon` as Traccar's own OsmAnd decoder also reads it."""
    location = params.get("location")
    if params.get("lat") in (None, "") and isinstance(location, str) and "," in location:
        lat, _, lon = location.partition(",")
        return lat.strip(), lon.strip()
    return params.get("lat"), params.get("lon")


def from_osmand(params: Mapping[str, Any], received_at: float | None = None) -> Ping:
    """OsmAnd / Traccar Client query parameters; speed in knots, as Traccar reads it.

    OsmAnd's URL template may leave the time out; then, as Traccar's server does,
    the fix is taken as recorded when it was received (`received_at`). As in Traccar's
    decoder, `heading` is another name for `bearing`, `location=lat,lon` stands for
    `lat`/`lon`, and `valid=false` marks a fix the device itself does not trust."""
    raw_lat, raw_lon = _osmand_location(params)
    lat, lng = _coords(_num(raw_lat, "lat"), _num(raw_lon, "lon"))
    bearing = params.get("bearing")
    if bearing in (None, ""):
        bearing = params.get("heading")
    knots = _optional_nonnegative(_num(params.get("speed"), "speed"), "speed")
    batt = _num(params.get("batt"), "batt")
    return Ping(
        lat=lat,
        lng=lng,
        recorded_at=(
            received_at
            if received_at is not None and params.get("timestamp") in (None, "")
            else parse_time(params.get("timestamp"), "timestamp")
        ),
        heading=_heading(_num(bearing, "bearing")),
        speed=None if knots is None else knots * KNOT_MS,
        accuracy=_optional_nonnegative(_num(params.get("accuracy"), "accuracy"), "accuracy"),
        altitude=_num(params.get("altitude"), "altitude"),
        battery=None if batt is None else max(0.0, min(batt / 100.0, 1.0)),
        valid=str(params.get("valid", "true")).strip().lower() not in ("false", "0"),
    )


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class LastFix:
    lat: float
    lng: float
    recorded_at: float


def check(ping: Ping, now: float, rules: PingRules, last: LastFix | None = None) -> None:
    """Raise `InvalidPing` for a fix no car could have produced."""
    if ping.recorded_at > now + rules.max_future_s:
        raise InvalidPing("timestamp_in_future", "recorded_at is in the future")
    if ping.recorded_at < now - rules.max_age_s:
        raise InvalidPing("timestamp_too_old", "recorded_at is too old")
    if last is not None:
        dt = abs(ping.recorded_at - last.recorded_at)
        moved = distance_m(last.lat, last.lng, ping.lat, ping.lng)
        # a fix that says it is imprecise may land further off without being impossible
        slack = rules.jump_slack_m + min(ping.accuracy or 0.0, 1000.0)
        if moved > rules.max_speed_ms * dt + slack:
            raise InvalidPing(
                "impossible_jump",
                f"moved {moved:.0f} m in {dt:.1f} s: faster than a car can go",
            )
