"""Dispatch's live state in Redis: the idle drivers near a pickup, each driver's open
offer (expiring with it) and the counts of offers made, accepted, declined, expired."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from domain.dispatch import Candidate
from infra.live.keys import Keys, driver_stream
from infra.live.positions import nearest
from infra.live.scripts import lua_script
from infra.live.streams import Streams


class OffersAsync:
    """The API's side: a driver's open offer and counts."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r: Any = client

    async def open_offer(self, driver_id: str) -> dict[str, Any] | None:
        raw = await self.r.get(Keys.of(Keys.DRIVER_OFFER, driver_id))
        return json.loads(raw) if raw else None

    async def offer_stats(self, driver_id: str) -> dict[str, int]:
        raw = await self.r.hgetall(Keys.of(Keys.OFFER_STATS, driver_id))
        return {k: int(raw.get(k, 0)) for k in ("offered", "accepted", "declined", "expired")}


class Offers:
    """The dispatch worker's side."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client
        self.streams = Streams(client)
        self._close = client.register_script(lua_script("close_offer"))

    def candidates_near(
        self, lat: float, lng: float, radius_m: float, stale_s: float
    ) -> list[Candidate]:
        """Idle online drivers with a fresh position near (lat, lng), without an open offer."""
        found = nearest(self.r, lat, lng, radius_m, 200)
        if not found:
            return []
        pipe = self.r.pipeline(transaction=False)
        for driver_id, _dist in found:
            pipe.hmget(Keys.of(Keys.DRIVER_STATE, driver_id), "status", "ride_id")
            pipe.hget(Keys.of(Keys.POSITION, driver_id), "ts")
            pipe.exists(Keys.of(Keys.DRIVER_OFFER, driver_id))
            pipe.hmget(Keys.of(Keys.OFFER_STATS, driver_id), "offered", "declined", "expired")
        rows: Any = pipe.execute()
        fresh_after = time.time() - stale_s
        out = []
        for n, (driver_id, dist) in enumerate(found):
            (status, ride_id), ts, has_offer, (offered, declined, expired) = rows[4 * n : 4 * n + 4]
            if status != "online" or ride_id or has_offer or not ts or float(ts) < fresh_after:
                continue
            out.append(
                Candidate(
                    driver_id,
                    float(dist),
                    offered=int(offered or 0),
                    ignored=int(declined or 0) + int(expired or 0),
                )
            )
        return out

    def offer_made(self, driver_id: str, payload: dict[str, Any], ttl_ms: int) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.set(Keys.of(Keys.DRIVER_OFFER, driver_id), json.dumps(payload), px=ttl_ms)
        pipe.hincrby(Keys.of(Keys.OFFER_STATS, driver_id), "offered", 1)
        pipe.execute()
        self.streams.emit(driver_stream(driver_id), "offer", payload)

    def offer_closed(self, driver_id: str, ride_id: str, reason: str) -> None:
        """The driver's offer of this ride is gone: counted, and (unless the driver ended
        it themselves) announced as withdrawn."""
        self._close(keys=[Keys.of(Keys.DRIVER_OFFER, driver_id)], args=[ride_id])
        if reason in ("declined", "expired", "accepted"):
            self.r.hincrby(Keys.of(Keys.OFFER_STATS, driver_id), reason, 1)
        if reason not in ("accepted", "declined"):
            self.streams.emit(
                driver_stream(driver_id), "offer_withdrawn", {"ride_id": ride_id, "reason": reason}
            )
