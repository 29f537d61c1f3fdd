"""Per-process live objects (the live state's adapters, the SSE hub) and the read of a
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
from infra.events import EventHub
from infra.live import LiveAsync
from infra.live.rides import LiveRide
from infra.rides import ride_facts_from_sql

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
