"""Per-process live objects (Redis client, hot-path scripts, the SSE hub) and the read of a
ride's facts for streams and polling, cached in the process.

A reconnect storm (every passenger of an API process reopening their stream at once,
after a deploy or a network blip) must not turn into as many Redis or SQL reads: the
facts a stream needs are cached here, and only one read per ride is in flight.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request

from api.errors import ApiError
from domain.access import Access, Caller, ride_access
from domain.pings import distance_m
from domain.trip import eta_seconds
from infra.events import EventHub
from infra.jobs import send_now
from infra.live import LiveAsync
from infra.live.keys import ride_stream
from infra.live.rides import LiveRide
from infra.repositories import ride_facts_from_sql
from infra.settings import Settings

#: how long facts stay cached: the participants of an assigned or ended ride never change
#: (its status may; a stream learns it from the stream itself). A ride still waiting for
#: its driver is not cached: only its concurrent reads are shared.
FACTS_TTL_SETTLED_S = 300.0


def live(request: Request) -> LiveAsync:
    result: LiveAsync = request.app.state.live
    return result


def hub(request: Request) -> EventHub:
    result: EventHub = request.app.state.hub
    return result


class RideFactsCache:
    """Ride facts by id, each read once from Redis (or, on a miss, SQL) however many
    requests ask for it at the same moment."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, LiveRide | None]] = {}
        self._loading: dict[str, asyncio.Future[LiveRide | None]] = {}

    async def get(
        self, live_state: LiveAsync, ride_id: str, *, fresh: bool = False
    ) -> LiveRide | None:
        now = time.monotonic()
        hit = None if fresh else self._entries.get(ride_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._loading.get(ride_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LiveRide | None] = asyncio.get_running_loop().create_future()
        self._loading[ride_id] = future
        try:
            facts = await live_state.rides.ride_facts(ride_id)
            if facts is None:  # an old ride, a flushed Redis: filled once from SQL
                facts = await asyncio.to_thread(ride_facts_from_sql, ride_id)
            if facts is not None and (facts.driver_id is not None or facts.ended):
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[ride_id] = (now + FACTS_TTL_SETTLED_S, facts)
            future.set_result(facts)
            return facts
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            del self._loading[ride_id]


def facts_cache(request: Request) -> RideFactsCache:
    result: RideFactsCache = request.app.state.ride_facts
    return result


async def followed_ride(
    request: Request, caller: Caller, ride_id: str, *, fresh: bool = False
) -> LiveRide:
    """The ride's facts, if the caller may follow it live (its passenger, its driver, an
    admin: `domain.access`); else 404, which leaks no existence. `fresh` skips the cache
    (polling decides on the current status)."""
    facts = await facts_cache(request).get(live(request), ride_id, fresh=fresh)
    if facts is None or ride_access(caller, facts.passenger_id, facts.driver_id) < (
        Access.PARTICIPANT
    ):
        raise ApiError(404, "ride not found", "ride_not_found")
    return facts


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
    from domain.rides import DRIVER_ACTIVE

    if ride_status in DRIVER_ACTIVE:
        return settings.ping_interval_on_ride_s
    if status == "online":
        return settings.ping_interval_idle_s
    return 0


async def maybe_emit_eta(
    request: Request, settings: Settings, ride_id: str, ride_status: str, pos: dict[str, Any]
) -> None:
    """At most one `eta` event per ride every `eta_interval_s`: to the pickup while the
    driver approaches, to the dropoff during the trip."""
    state = live(request)
    if not await state.rides.eta_due(ride_id, settings.eta_interval_s):
        return
    facts = await facts_cache(request).get(state, ride_id)
    if facts is None:
        return
    target = "dropoff" if ride_status == "in_progress" else "pickup"
    lat, lng = facts.dropoff if target == "dropoff" else facts.pickup
    straight = distance_m(pos["lat"], pos["lng"], lat, lng)
    seconds, road = eta_seconds(
        straight,
        pos.get("speed"),
        fallback_speed_ms=settings.average_speed_kmh / 3.6,
        detour_factor=settings.detour_factor,
    )
    await state.streams.emit(
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
    if (
        target == "pickup"
        and ride_status == "accepted"
        and seconds <= settings.arriving_push_s
        and await state.rides.first_arriving(ride_id)
    ):
        # the passenger is told the driver is about to arrive, once per ride. Best effort,
        # straight to the push worker: an ETA is not a committed state to put in an outbox
        await asyncio.to_thread(send_now, "notifications.arriving", ride_id=ride_id)
