"""The `LivePublisher` port: what tells Redis of a ride's new state, run once the
transaction has committed (never before: a client must not see a status that could
still roll back). Idempotent and order-safe, so the outbox may repeat it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from uuid import UUID

from domain.rides import RideEvent, RideState
from infra.live.keys import iso
from infra.live.rides import LiveRides
from infra.redis import get_sync_redis

_FACTS = (
    "id",
    "passenger_id",
    "driver_id",
    "status",
    "pickup_lat",
    "pickup_lng",
    "dropoff_lat",
    "dropoff_lng",
    "updated_at",
)


def ride_facts(ride: RideState) -> SimpleNamespace:
    return SimpleNamespace(**{name: getattr(ride, name) for name in _FACTS})


def status_event(ride_id: UUID | str, status: str, at: datetime) -> dict[str, str]:
    return {"ride_id": str(ride_id), "status": str(status), "at": iso(at.timestamp())}


class RedisLivePublisher:
    """What tells Redis of a ride's new state: run by the unit of work once the transaction
    has committed (never before: a client must not see a status that could still roll
    back). Idempotent and order-safe, so the outbox may repeat it."""

    def ride_changed(self, ride: RideState, event: RideEvent) -> Callable[[], None]:
        facts, payload = ride_facts(ride), status_event(ride.id, event.status, event.at)

        def publish() -> None:
            LiveRides(get_sync_redis()).ride_changed(facts, payload)

        return publish

    def republish(self, ride: RideState, status: str, at: datetime) -> bool:
        return LiveRides(get_sync_redis()).ride_changed(ride, status_event(ride.id, status, at))
