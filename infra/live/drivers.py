"""The `DriverPositions` port over the live view: who is near, who was heard from when,
and the sweep of drivers gone silent."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import redis

from domain.dispatch import Candidate
from infra.live.offers import Offers
from infra.live.positions import Positions


class RedisDriverPositions:
    """The `DriverPositions` port: drivers heard from within `stale_s` are the live ones."""

    def __init__(self, client: redis.Redis, stale_s: float) -> None:
        self.positions = Positions(client)
        self.offers = Offers(client)
        self.stale_s = stale_s

    def near(self, lat: float, lng: float, radius_m: float) -> list[Candidate]:
        return self.offers.candidates_near(lat, lng, radius_m, self.stale_s)

    def last_seen(self, driver_id: UUID) -> datetime | None:
        ts = self.positions.last_seen(str(driver_id))
        return datetime.fromtimestamp(ts, UTC) if ts is not None else None

    def forget_silent(self, now: datetime) -> int:
        return self.positions.sweep_stale(now.timestamp() - self.stale_s)
