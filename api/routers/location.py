"""Live location: pings from the driver app and tracking SDKs, status, nearby search.

The hot path touches Redis only: a JWT check (cached), parsing, one script call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.routing import Route

from api.deps import (
    CurrentDriver,
    PassengerOrAdmin,
    PingDriver,
    SettingsDep,
    UowDep,
    ping_driver,
)
from api.error_codes import ErrorCode
from api.errors import ApiError, error_responses
from api.eta import maybe_emit_eta
from api.events import Position
from api.live import live, read_json
from api.pagination import DEFAULT_LIMIT, Limit
from api.schemas import Page, Strict
from domain.access import Actor
from domain.pings import (
    MAX_GEO_LAT,
    InvalidPing,
    Ping,
    check,
    from_background_geolocation,
    from_native,
    from_osmand,
)
from domain.rides import DRIVER_ACTIVE
from domain.trip import DriverStatus, next_ping_in
from infra.metrics import PINGS
from infra.settings import Settings, get_settings
from infra.users import device_key_hash, driver_of_device_key

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/v1", tags=["live location"], responses=error_responses(401, 403, 429)
)


# --- documentation shapes (the handlers parse bodies themselves, for speed) -------------
class NativePing(BaseModel):
    """One fix as the driver app sends it."""

    lat: float = Field(
        ge=-MAX_GEO_LAT, le=MAX_GEO_LAT, description="Latitude, within the map's limit."
    )
    lng: float = Field(ge=-180, le=180, description="Longitude.")
    recorded_at: str = Field(
        description="When the device took the fix: RFC 3339, or unix seconds or milliseconds.",
        examples=["2026-12-05T18:04:05.120Z"],
    )
    heading: float | None = Field(default=None, ge=0, le=360, description="Degrees from north.")
    speed: float | None = Field(default=None, ge=0, description="Metres per second.")
    accuracy: float | None = Field(default=None, ge=0, description="Horizontal accuracy, metres.")
    altitude: float | None = Field(default=None, description="Metres above sea level.")
    uuid: str | None = Field(
        default=None,
        description="The device's id of the fix (the first 100 characters count): a repeat is "
        "a duplicate.",
    )


class SdkCoords(BaseModel):
    """`coords` of a react-native-background-geolocation record."""

    latitude: float = Field(ge=-MAX_GEO_LAT, le=MAX_GEO_LAT, description="Latitude.")
    longitude: float = Field(ge=-180, le=180, description="Longitude.")
    accuracy: float | None = Field(default=None, ge=0, description="Metres.")
    speed: float | None = Field(default=None, description="Metres per second (-1: unknown).")
    heading: float | None = Field(default=None, description="Degrees (-1: unknown).")
    altitude: float | None = Field(default=None, description="Metres.")


class SdkLocation(BaseModel):
    """One record as react-native-background-geolocation (and Traccar Client 9) post it;
    fields not listed are ignored."""

    coords: SdkCoords = Field(description="Where.")
    timestamp: str = Field(description="When, RFC 3339.")
    uuid: str | None = Field(default=None, description="The SDK's id of the record.")
    is_moving: bool | None = Field(default=None, description="The SDK's motion state.")
    odometer: float | None = Field(default=None, description="Metres, as the SDK counts.")


class NativeBatch(Strict):
    """The driver app's own batch."""

    pings: list[NativePing] = Field(description="The fixes, in any order (applied by time).")


class SdkBatch(Strict):
    """react-native-background-geolocation's HTTP body (`batchSync` off or on)."""

    location: SdkLocation | list[SdkLocation] = Field(description="One record, or many.")


class SdkLocations(Strict):
    """The same records under `locations`."""

    locations: list[SdkLocation] = Field(description="The records.")


class Rejection(BaseModel):
    """A record that was not taken, and why."""

    index: int = Field(description="Its position in the request (0 for a single fix).")
    reason: ErrorCode = Field(description="Why, for programs.")
    detail: str = Field(description="Why, for people.")


class PingAnswer(BaseModel):
    """What became of the fixes sent."""

    accepted: int = Field(description="Fixes taken (a fix the device marked invalid included).")
    rejected: int = Field(description="Fixes refused; each in `reasons`.")
    duplicates: int = Field(description="Fixes already taken before (same id or time).")
    reasons: list[Rejection] = Field(description="Each refused (or invalid) record, by index.")
    next_ping_in_s: int = Field(description="Seconds until the next fix is wanted (0: stop).")


class StatusIn(Strict):
    """The driver's wish."""

    status: DriverStatus = Field(description="`online` to take rides, `offline` to stop.")


class DriverStatusOut(BaseModel):
    """The driver's status now."""

    status: DriverStatus = Field(description="The driver's status now.")
    next_ping_in_s: int = Field(
        description="Seconds until the app should send its next fix (0: stop sending)."
    )


class DeviceKey(BaseModel):
    """A device key, shown once."""

    device_key: str = Field(
        description="The secret the tracking app sends as `id`; making a new one ends the old."
    )


_BEARER: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}]


#: the bodies the handlers parse themselves, added to the document's components
BODY_MODELS: tuple[type[BaseModel], ...] = (
    NativePing,
    NativeBatch,
    SdkBatch,
    SdkLocations,
    SdkLocation,
    StatusIn,
)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "security": _BEARER,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(model)}},
        },
    }


_BATCH_DOC = {
    "security": _BEARER,
    "requestBody": {
        "required": True,
        "description": "Five shapes, told apart by their one required key (`pings`, "
        "`location`, `locations`, `coords`) or by being an array; each branch excludes the "
        "others, so exactly one matches. No `discriminator`: the tracking SDKs' bodies carry "
        "no tag field to name.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        _ref(NativeBatch),
                        _ref(SdkBatch),
                        _ref(SdkLocations),
                        {
                            "type": "array",
                            "description": "A bare array of records of either format.",
                            "items": {"anyOf": [_ref(NativePing), _ref(SdkLocation)]},
                        },
                        _ref(SdkLocation),
                    ]
                }
            }
        },
    },
}

_OSMAND_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "deviceid": ({"type": "string"}, "The device key, where a client sends it as `deviceid`."),
    "lat": ({"type": "number", "minimum": -MAX_GEO_LAT, "maximum": MAX_GEO_LAT}, "Latitude."),
    "lon": ({"type": "number", "minimum": -180, "maximum": 180}, "Longitude."),
    "location": (
        {"type": "string", "pattern": r"^-?[0-9.]+,-?[0-9.]+$"},
        "`lat,lon` in one parameter, as Traccar's own server reads it (instead of the two).",
    ),
    "timestamp": (
        {"type": "string"},
        "When: unix seconds or milliseconds, or RFC 3339; now if left out.",
    ),
    "speed": ({"type": "number", "minimum": 0}, "Knots."),
    "bearing": ({"type": "number", "minimum": 0, "maximum": 360}, "Degrees from north."),
    "heading": ({"type": "number", "minimum": 0, "maximum": 360}, "Another name of `bearing`."),
    "accuracy": ({"type": "number", "minimum": 0}, "Metres."),
    "altitude": ({"type": "number"}, "Metres."),
    "batt": ({"type": "number"}, "Battery level, percent."),
    "valid": ({"type": "boolean"}, "False when the device says the fix is not valid."),
}
_OSMAND_PARAMS = [
    {"name": name, "in": "query", "required": False, "schema": schema, "description": text}
    for name, (schema, text) in _OSMAND_FIELDS.items()
]
_OSMAND_FORM = {
    "type": "object",
    "title": "OsmandForm",
    "description": "The same fields as the query's, as a form.",
    "properties": {
        "id": {"type": "string", "description": "The device key."},
        **{
            name: {**schema, "description": text} for name, (schema, text) in _OSMAND_FIELDS.items()
        },
    },
}
_OSMAND_JSON = {
    "type": "object",
    "title": "TraccarJson",
    "description": "Traccar Client 9's JSON.",
    "required": ["location"],
    "properties": {
        "device_id": {"type": "string", "description": "The device key."},
        "location": {
            "description": "One record, or many.",
            "oneOf": [
                _ref(SdkLocation),
                {"type": "array", "items": _ref(SdkLocation)},
            ],
        },
    },
}
#: OsmAnd's bodies, as schemas for the document's components
OSMAND_SCHEMAS = {"OsmandForm": _OSMAND_FORM, "TraccarJson": _OSMAND_JSON}

_OSMAND_GET_DOC: dict[str, Any] = {"parameters": _OSMAND_PARAMS}
_OSMAND_POST_DOC: dict[str, Any] = {
    "parameters": _OSMAND_PARAMS,
    "requestBody": {
        "required": False,
        "description": "Optional: the fix may come in the query alone.",
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": "#/components/schemas/OsmandForm"}
            },
            "application/json": {"schema": {"$ref": "#/components/schemas/TraccarJson"}},
        },
    },
}


# --- applying pings -----------------------------------------------------------------------
async def _apply(
    request: Request,
    settings: Settings,
    driver_id: str,
    parsed: list[tuple[int, Ping]],
    reasons: list[dict[str, Any]],
    total: int,
) -> dict[str, Any]:
    res = await live(request).positions.apply_pings(
        driver_id,
        [p for _, p in parsed],
        settings.fixes,
        rate_limit=settings.ping_rate_limit,
        rate_window_s=settings.ping_rate_window_s,
    )
    if res.rate_limited_for:
        PINGS.labels("rejected", "rate_limited").inc(len(parsed))
        raise ApiError(
            429,
            "too many location requests; slow down",
            "rate_limited",
            {"Retry-After": str(res.rate_limited_for)},
        )
    accepted = duplicates = 0
    for (index, _ping), code in zip(parsed, res.codes, strict=True):
        if code == "accepted":
            accepted += 1
        elif code == "invalid_fix":
            accepted += 1  # noted as sent, never shown: the device marked it invalid
            reasons.append({"index": index, "reason": code, "detail": _DETAIL[code]})
        elif code == "duplicate":
            duplicates += 1
        else:
            reasons.append({"index": index, "reason": code, "detail": _DETAIL.get(code, code)})
    if res.event_id and res.ride_status in DRIVER_ACTIVE:
        taken = [p for (_, p), code in zip(parsed, res.codes, strict=True) if code == "accepted"]
        newest = max(taken, key=lambda p: p.recorded_at)
        try:
            await maybe_emit_eta(
                request,
                settings.live_rules,
                res.ride_id,
                res.ride_status,
                {"lat": newest.lat, "lng": newest.lng, "speed": newest.speed},
            )
        except Exception:  # the fixes are stored: the answer must say so
            log.warning("ETA for ride %s not emitted", res.ride_id, exc_info=True)
    reasons.sort(key=lambda r: r["index"])
    _count(accepted, duplicates, reasons)
    return {
        "accepted": accepted,
        "rejected": total - accepted - duplicates,
        "duplicates": duplicates,
        "reasons": reasons,
        "next_ping_in_s": next_ping_in(settings.live_rules, res.status, res.ride_status),
    }


_ACCEPTED = PINGS.labels("accepted", "")
_DUPLICATE = PINGS.labels("duplicate", "")


def _count(accepted: int, duplicates: int, reasons: list[dict[str, Any]]) -> None:
    if accepted:
        _ACCEPTED.inc(accepted)
    if duplicates:
        _DUPLICATE.inc(duplicates)
    for r in reasons:
        if r["reason"] != "invalid_fix":  # counted as accepted (recorded, not shown)
            PINGS.labels("rejected", r["reason"]).inc()


_DETAIL = {
    "impossible_jump": "moved faster than a car can go since the last fix",
    "invalid_fix": "the device marked this fix invalid: recorded, not shown",
    "lat_out_of_range": f"lat must be within -{MAX_GEO_LAT}..{MAX_GEO_LAT} (map limit)",
}


def _parse_all(
    records: list[Any], parse: Any, settings: Settings
) -> tuple[list[tuple[int, Ping]], list[dict[str, Any]]]:
    now = time.time()
    rules = settings.fixes
    parsed: list[tuple[int, Ping]] = []
    reasons: list[dict[str, Any]] = []
    for i, raw in enumerate(records):
        try:
            p = parse(raw)
            check(p, now, rules)
        except InvalidPing as bad:
            reasons.append({"index": i, "reason": bad.reason, "detail": bad.detail})
            continue
        parsed.append((i, p))
    return parsed, reasons


def _auto(raw: Any) -> Ping:
    """A record of either format: background-geolocation records carry `coords`."""
    if isinstance(raw, dict) and "coords" in raw:
        return from_background_geolocation(raw)
    return from_native(raw)


def _records(body: Any) -> list[Any]:
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("pings", "location", "locations"):
            if key in body:
                value = body[key]
                return value if isinstance(value, list) else [value]
        if "coords" in body:
            return [body]
    raise ApiError(
        422,
        'expected {"pings": [...]}, {"location": {...}} or {"location": [...]}',
        "validation_error",
    )


async def _batch(
    request: Request, settings: Settings, driver_id: str, records: list[Any], parse: Any
) -> JSONResponse:
    if len(records) > settings.ping_batch_max:
        raise ApiError(
            413, f"at most {settings.ping_batch_max} records per request", "payload_too_large"
        )
    parsed, reasons = _parse_all(records, parse, settings)
    if not parsed:
        _count(0, 0, reasons)
        state = await live(request).positions.driver_state(driver_id)
        answer = {
            "accepted": 0,
            "rejected": len(records),
            "duplicates": 0,
            "reasons": reasons,
            "next_ping_in_s": next_ping_in(
                settings.live_rules, state.get("status", "offline"), state.get("ride_status", "")
            ),
        }
    else:
        answer = await _apply(request, settings, driver_id, parsed, reasons, len(records))
    return JSONResponse(answer, status_code=202)


@router.post(
    "/drivers/me/location",
    status_code=202,
    response_model=PingAnswer,
    openapi_extra=_schema(NativePing),
)
async def ping(request: Request, caller: PingDriver) -> JSONResponse:
    """One fix from the driver app (or a device key). Accepted fixes are the driver's live
    position, join the ride's path and reach the ride's followers before the answer;
    impossible values (out of range, a jump faster than a car, too old) are a 422 with the
    reason. A repeat of a fix already taken (same id, or same time) counts as a duplicate,
    never twice. `next_ping_in_s` says when to send the next."""
    settings = get_settings()
    body = await read_json(request)
    try:
        p = from_native(body)
        check(p, time.time(), settings.fixes)
    except InvalidPing as bad:
        PINGS.labels("rejected", bad.reason).inc()
        raise ApiError(422, bad.detail, bad.reason) from bad
    answer = await _apply(request, settings, str(caller.id), [(0, p)], [], 1)
    if answer["reasons"] and not answer["accepted"]:
        raise ApiError(422, answer["reasons"][0]["detail"], answer["reasons"][0]["reason"])
    return JSONResponse(answer, status_code=202)


@router.post(
    "/drivers/me/locations",
    status_code=202,
    response_model=PingAnswer,
    openapi_extra=_BATCH_DOC,
)
async def pings(request: Request, caller: PingDriver) -> JSONResponse:
    """Many fixes at once (a backlog sent after a network loss): native records, or the
    bodies of the tracking SDKs the apps use. Applied in time order in one step; each bad
    record is counted and explained in `reasons` by its index, never a non-2xx for the
    batch."""
    settings = get_settings()
    records = _records(await read_json(request))
    return await _batch(request, settings, str(caller.id), records, _auto)


# --- status ------------------------------------------------------------------------------
@router.post(
    "/drivers/me/status",
    response_model=DriverStatusOut,
    openapi_extra=_schema(StatusIn),
    responses=error_responses(409),
)
async def set_status(request: Request, caller: CurrentDriver) -> dict[str, Any]:
    """`online` puts the driver in nearby search and dispatch (with their next fix);
    `offline` takes them out at once. Going offline during a ride is a 409
    (`driver_on_ride`)."""
    body = await read_json(request)
    status = body.get("status") if isinstance(body, dict) else None
    if status not in ("online", "offline"):
        raise ApiError(422, "status must be online or offline", "validation_error")
    settings = get_settings()
    state = await live(request).positions.set_driver_status(
        str(caller.id), online=status == "online"
    )
    if status == "offline" and state.get("ride_status") in DRIVER_ACTIVE:
        raise ApiError(409, "finish or cancel your ride before going offline", "driver_on_ride")
    return {
        "status": status,
        "next_ping_in_s": next_ping_in(settings.live_rules, status, state.get("ride_status", "")),
    }


# --- device keys and the OsmAnd / Traccar protocol ---------------------------------------
@router.post("/drivers/me/device-key", response_model=DeviceKey)
def device_key(caller: CurrentDriver, uow: UowDep) -> DeviceKey:
    """A new secret for a tracking app that cannot send headers; the old one stops working."""
    return DeviceKey(device_key=uow.users.new_device_key(caller.id))


async def _driver_of_key(request: Request, key: str | None) -> str:
    if not key:
        raise ApiError(401, "the device id (your device key) is required", "invalid_device_key")
    key_hash = device_key_hash(key)
    driver = await live(request).positions.driver_of_device_key(key_hash)
    if driver is None:
        driver = await asyncio.to_thread(driver_of_device_key, key_hash)
    if driver is None:
        raise ApiError(401, "unknown device key", "invalid_device_key")
    return str(driver)


@router.get("/osmand", status_code=200, response_model=PingAnswer, openapi_extra=_OSMAND_GET_DOC)
async def osmand_get(request: Request) -> JSONResponse:
    """The OsmAnd protocol as Traccar Client and OsmAnd send it: the fix in query
    parameters (`id` the device key, `lat`, `lon`, `timestamp`, `speed` in knots,
    `bearing`, `accuracy`). Always 200 when the key is known (the clients treat anything
    else as undelivered and retry forever); what was refused is in `reasons`."""
    return await osmand(request)


@router.post("/osmand", status_code=200, response_model=PingAnswer, openapi_extra=_OSMAND_POST_DOC)
async def osmand(request: Request) -> JSONResponse:
    """The OsmAnd protocol posted: query parameters, a form body, or Traccar Client 9's
    JSON (`{"device_id", "location": {...} or [...]}`). Answers as the GET form does."""
    settings = get_settings()
    params = dict(request.query_params)
    body: Any = None
    if request.method == "POST":
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        if raw and "json" in ctype:
            body = await read_json(request)
        elif raw and "form" in ctype:
            form = await request.form()
            params.update({k: str(v) for k, v in form.items()})
    if isinstance(body, dict) and "location" in body:
        driver = await _driver_of_key(request, str(body.get("device_id") or params.get("id") or ""))
        records = body["location"] if isinstance(body["location"], list) else [body["location"]]
        response = await _batch(request, settings, driver, records, _auto)
    else:
        driver = await _driver_of_key(request, params.get("id") or params.get("deviceid"))
        received = time.time()
        response = await _batch(
            request, settings, driver, [params], lambda raw: from_osmand(raw, received)
        )
    response.status_code = 200  # Traccar Client treats only 200 as delivered
    return response


# --- nearby ------------------------------------------------------------------------------
class NearbyDriver(Position):
    """An online driver near the point asked about."""

    distance_m: int = Field(description="Straight-line metres from the point.")


class NearbyPage(Page[NearbyDriver]):
    """The nearest drivers, nearest first: always one page (the nearest `limit`)."""


@router.get("/drivers/nearby", response_model=NearbyPage)
async def nearby(
    request: Request,
    caller: PassengerOrAdmin,
    settings: SettingsDep,
    lat: Annotated[
        float, Query(ge=-MAX_GEO_LAT, le=MAX_GEO_LAT, description="Latitude of the point.")
    ],
    lng: Annotated[float, Query(ge=-180, le=180, description="Longitude of the point.")],
    radius_m: Annotated[
        float, Query(gt=0, le=50_000, description="How far to look, in metres.")
    ] = 3_000,
    limit: Limit = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Online drivers by distance. Passengers see idle drivers; admins see all online ones."""
    positions = live(request).positions
    # twice what is shown, and ten: room for drivers on a ride or gone silent, most of
    # which a passenger's search leaves out (a page short of them reads more below)
    found = await positions.nearby(lat, lng, radius_m, limit * 2 + 10)
    fresh_after = time.time() - settings.driver_stale_s
    items: list[dict[str, Any]] = []
    # details read a chunk at a time, nearest first: most drivers found are shown
    chunk = limit + limit // 2 + 5
    for start in range(0, len(found), chunk):
        part = found[start : start + chunk]
        for (driver_id, dist), (pos, status, ride_id) in zip(
            part, await positions.describe([d for d, _ in part]), strict=True
        ):
            if status != "online" or not pos or float(pos["ts"]) < fresh_after:
                continue
            if ride_id and caller.role is not Actor.ADMIN:
                continue
            items.append({**position_out(driver_id, pos), "distance_m": round(dist)})
            if len(items) == limit:
                return {"items": items, "next_cursor": None}
    return {"items": items, "next_cursor": None}


def _opt(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def position_out(driver_id: str, pos: dict[str, str]) -> dict[str, Any]:
    return {
        "driver_id": driver_id,
        "lat": float(pos["lat"]),
        "lng": float(pos["lng"]),
        "heading": _opt(pos.get("heading")),
        "speed": _opt(pos.get("speed")),
        "accuracy": _opt(pos.get("accuracy")),
        "recorded_at": pos.get("at"),
    }


__all__ = ["position_out", "router"]


async def _raw_ping(request: Request) -> JSONResponse:
    return await ping(request, await ping_driver(request))


def fast_ping_route() -> Route:
    """The single ping as a plain Starlette route, matched before every other route.

    The FastAPI route above stays for the OpenAPI document and behaves the same; this
    one skips the framework's per-request dependency solving, which costs a measurable
    share of the hot path (bench/README.md)."""
    return _NamedRoute("/api/v1/drivers/me/location", _raw_ping, methods=["POST"])


class _NamedRoute(Route):
    """A Starlette route that names itself in the scope, as FastAPI's routes do, so the
    request metrics label it by its path rather than as unmatched."""

    def matches(self, scope: Any) -> tuple[Any, Any]:
        match, child = super().matches(scope)
        if child:
            child["route"] = self
        return match, child
