"""The `TripPaths` port: the fixes the hot path recorded for a ride's trip, and the
distance they add up to."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.pings import PingRules
from domain.trip import PathPoint, travelled_distance_m
from infra.live.rides import LiveRides
from infra.redis import get_sync_redis


class RedisTripPaths:
    def __init__(self, rules: PingRules) -> None:
        self.rules = rules

    def points(self, ride_id: UUID, since: datetime | None = None) -> list[PathPoint]:
        """The ride's recorded fixes that arrived from `since` (its start) on. The hot path
        records from the acceptance on, with each fix's arrival time by the server's
        clock, so that a step it learns of late (its publish repeated by the outbox) loses
        nothing, and fixes sent on the way to the pickup or waiting there are left out
        here."""
        out = []
        start = since.timestamp() if since is not None else None
        for raw in LiveRides(get_sync_redis()).trip_path(str(ride_id)):
            t, lat, lng, acc, *arrived = raw.split(",")
            if start is not None and arrived and float(arrived[0]) < start:
                continue
            out.append(PathPoint(float(t), float(lat), float(lng), float(acc) if acc else None))
        return out

    def travelled_m(self, ride_id: UUID, since: datetime | None = None) -> int | None:
        return travelled_distance_m(
            self.points(ride_id, since), max_speed_ms=self.rules.max_speed_ms
        )
