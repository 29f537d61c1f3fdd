"""What the hot path knows of each ride, in Redis: its facts (who, where, which status),
its status events emitted once each, the trip's path, and the gates of the ETA and
"driver arriving" notices."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from domain.rides import DRIVER_ACTIVE, TERMINAL
from infra.live.keys import (
    ADMIN_MAXLEN,
    ADMIN_STREAM,
    RIDE_FACTS_TTL_S,
    STREAM_MAXLEN,
    Keys,
    driver_stream,
    ride_stream,
)
from infra.live.scripts import lua_script


@dataclass(frozen=True, slots=True)
class LiveRide:
    """What the hot path knows of a ride (from `ride:{id}:meta`)."""

    ride_id: str
    passenger_id: str
    driver_id: str | None
    status: str
    pickup: tuple[float, float]
    dropoff: tuple[float, float]

    @classmethod
    def from_hash(cls, h: Mapping[str, str]) -> LiveRide:
        return cls(
            ride_id=h["ride_id"],
            passenger_id=h["passenger_id"],
            driver_id=h.get("driver_id") or None,
            status=h["status"],
            pickup=(float(h["pickup_lat"]), float(h["pickup_lng"])),
            dropoff=(float(h["dropoff_lat"]), float(h["dropoff_lng"])),
        )

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @property
    def driver_active(self) -> bool:
        return self.status in DRIVER_ACTIVE


def ride_facts_fields(ride: Any) -> dict[str, str]:
    """The hash fields of a ride's facts, from anything shaped like a ride row."""
    raw = {
        "ride_id": ride.id,
        "passenger_id": ride.passenger_id,
        "driver_id": ride.driver_id,
        "status": ride.status,
        "pickup_lat": ride.pickup_lat,
        "pickup_lng": ride.pickup_lng,
        "dropoff_lat": ride.dropoff_lat,
        "dropoff_lng": ride.dropoff_lng,
    }
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def ride_version(ride: Any) -> int:
    return int(ride.updated_at.timestamp() * 1_000_000)


class LiveRidesAsync:
    """The API's side: a ride's facts, and the once-only gates of its notices."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r: Any = client

    async def ride_facts(self, ride_id: str) -> LiveRide | None:
        raw = await self.r.hgetall(Keys.of(Keys.RIDE_META, ride_id))
        return LiveRide.from_hash(raw) if raw else None

    async def first_arriving(self, ride_id: str) -> bool:
        """True the first time only: whether to tell the passenger the driver is close."""
        return bool(await self.r.set(Keys.of(Keys.ARRIVING_TOLD, ride_id), "1", nx=True, ex=86400))

    async def forget_arriving(self, ride_id: str) -> None:
        """The notice could not be sent: the next close fix may try again."""
        await self.r.delete(Keys.of(Keys.ARRIVING_TOLD, ride_id))

    async def eta_due(self, ride_id: str, interval_s: float) -> bool:
        """True at most once per `interval_s` per ride: whether to emit an ETA now."""
        return bool(
            await self.r.set(
                Keys.of(Keys.ETA_GATE, ride_id), "1", nx=True, px=max(1, int(interval_s * 1000))
            )
        )


class LiveRides:
    """Writes from transactions (after commit) and workers."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client
        self._ride_changed = client.register_script(lua_script("ride_changed"))
        self._driver_ride = client.register_script(lua_script("driver_ride"))
        self._emit = client.register_script(lua_script("emit"))

    def ride_changed(self, ride: Any, status_event: dict[str, Any] | None) -> bool:
        """Cache what the hot path needs to know of a ride, then publish its status event
        (once per status). Safe to repeat and to run late: older facts never overwrite
        newer ones. True if the status event was emitted now.

        Three steps, one slot each: the ride's facts and stream, then its driver's state
        and stream, then the admin stream. Each of the first two is idempotent with a
        once-only gate of its own, so a repeat after a crash between them finishes the
        work; the admin stream is told when the ride's stream was (ops' view, at most
        once)."""
        ride_id = str(ride.id)
        driver = str(ride.driver_id) if ride.driver_id else ""
        status = str(ride.status)
        event = json.dumps(status_event) if status_event is not None else ""
        args: list[Any] = [ride_version(ride), status, event, STREAM_MAXLEN, RIDE_FACTS_TTL_S]
        for k, v in ride_facts_fields(ride).items():
            args += [k, v]
        keys = [
            Keys.of(Keys.RIDE_META, ride_id),
            Keys.of(Keys.RIDE_PUBLISHED, ride_id),
            ride_stream(ride_id),
        ]
        written, event_id = self._ride_changed(keys=keys, args=args)
        if driver:
            self._driver_ride(
                keys=[
                    Keys.of(Keys.DRIVER_STATE, driver),
                    driver_stream(driver),
                    Keys.of(Keys.DRIVER_TOLD, driver),
                    Keys.trip_path(driver, ride_id),
                ],
                args=[
                    ride_id,
                    status,
                    int(status in DRIVER_ACTIVE),
                    int(status in TERMINAL),
                    written,
                    event,
                    STREAM_MAXLEN,
                    RIDE_FACTS_TTL_S,
                ],
            )
        if not event_id:
            return False
        self._emit(keys=[ADMIN_STREAM], args=["status", ADMIN_MAXLEN, event])
        return True

    def trip_path(self, ride_id: str) -> list[str]:
        """The fixes recorded on the ride (kept on its driver's slot)."""
        driver = self.r.hget(Keys.of(Keys.RIDE_META, ride_id), "driver_id")
        if not driver:
            return []
        return self.r.lrange(Keys.trip_path(driver, ride_id), 0, -1)
