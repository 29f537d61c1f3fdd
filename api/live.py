"""Per-process live objects (Redis client, the hot-path scripts, the SSE hub) and helpers."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request

from api.errors import ApiError
from domain.pings import distance_m
from domain.rides import Actor
from domain.services import Caller
from domain.trip import eta_seconds
from infra.db import unit_of_work
from infra.events import EventHub
from infra.live import ACTIVE_RIDE, LiveAsync, LiveSync, ride_stream
from infra.models import Ride
from infra.redis import get_sync_redis
from infra.repositories import ride_meta
from infra.settings import Settings


def live(request: Request) -> LiveAsync:
    result: LiveAsync = request.app.state.live
    return result


def hub(request: Request) -> EventHub:
    result: EventHub = request.app.state.hub
    return result


async def read_json(request: Request) -> Any:
    body = await request.body()
    if not body:
        raise ApiError(422, "a JSON body is required", "validation_error")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, f"invalid JSON: {exc}", "invalid_json") from exc


def next_ping_in(settings: Settings, status: str, ride_status: str) -> int:
    """Short on a ride, long while idle and online, 0 (stop) when offline."""
    if ride_status in ACTIVE_RIDE:
        return settings.ping_interval_on_ride_s
    if status == "online":
        return settings.ping_interval_idle_s
    return 0


def _load_meta_from_sql(ride_id: str) -> dict[str, str]:
    import uuid

    with unit_of_work() as session:
        ride = session.get(Ride, uuid.UUID(ride_id))
        if ride is None:
            return {}
        meta = ride_meta(ride)
    LiveSync(get_sync_redis()).ride_changed(meta, None)
    return {k: "" if v is None else str(v) for k, v in meta.items()}


async def visible_ride(request: Request, caller: Caller, ride_id: str) -> dict[str, str]:
    """The ride's cached facts, if the caller may see it; else 404 (no existence leak).

    Redis holds them from the ride's first commit on; a miss (an old ride, a flushed
    Redis) is filled once from SQL.
    """
    meta = await live(request).ride_meta(ride_id)
    if not meta:
        meta = await asyncio.to_thread(_load_meta_from_sql, ride_id)
    if meta and (
        caller.role is Actor.ADMIN
        or meta.get("passenger_id") == str(caller.id)
        or meta.get("driver_id") == str(caller.id)
    ):
        return meta
    raise ApiError(404, "ride not found", "ride_not_found")


async def maybe_emit_eta(
    request: Request, settings: Settings, ride_id: str, ride_status: str, pos: dict[str, Any]
) -> None:
    """At most one `eta` event per ride every `eta_interval_s`: to the pickup while the
    driver approaches, to the dropoff during the trip."""
    client = live(request).r
    gate = await client.set(
        f"ride:{ride_id}:eta_gate", "1", nx=True, px=max(1, int(settings.eta_interval_s * 1000))
    )
    if not gate:
        return
    meta = await live(request).ride_meta(ride_id)
    if not meta:
        return
    target = "dropoff" if ride_status == "in_progress" else "pickup"
    straight = distance_m(
        pos["lat"], pos["lng"], float(meta[f"{target}_lat"]), float(meta[f"{target}_lng"])
    )
    seconds, road = eta_seconds(
        straight,
        pos.get("speed"),
        fallback_speed_ms=settings.average_speed_kmh / 3.6,
        detour_factor=settings.detour_factor,
    )
    await live(request).emit(
        ride_stream(ride_id),
        "eta",
        {
            "ride_id": ride_id,
            "seconds": seconds,
            "distance_m": road,
            "target": target,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )
