"""Ride follow-ups: the live publish (repeated from the outbox, idempotently) and the
after-trip path, which goes from Redis to the ride as an encoded polyline."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session

from domain.jobs import Job
from domain.rides import RideStatus
from domain.trip import encode_polyline
from infra.live.publisher import status_event
from infra.live.rides import LiveRides
from infra.live.trip_paths import RedisTripPaths
from infra.models import Ride
from infra.redis import get_sync_redis
from infra.settings import get_settings
from workers.base import Retryable, transactional_task


@transactional_task(Job.STORE_TRIP)
def store_trip(session: Session, ride_id: str) -> str:
    ride = session.get(Ride, uuid.UUID(ride_id), with_for_update=True)
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    if ride.status != RideStatus.COMPLETED:
        return "not completed"
    if ride.route_polyline is not None:
        return "already stored"
    points = RedisTripPaths(get_settings().fixes).points(ride.id, since=ride.started_at)
    points.sort(key=lambda p: p.t)
    ride.route_polyline = encode_polyline((p.lat, p.lng) for p in points)
    ride.path_points = len(points)
    session.add(ride)
    return f"stored {len(points)} points"


@transactional_task(Job.PUBLISH_RIDE)
def publish(session: Session, ride_id: str, status: str, at: str) -> str:
    """The ride's facts and its `status` event, for the hot path and the streams. The API
    (or worker) that made the change did it already right after its commit; this repeats
    it, which changes nothing then and repairs a publish lost to a Redis blip. Older
    facts never overwrite newer ones, and each status is emitted once."""
    ride = session.get(Ride, uuid.UUID(ride_id))
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    event = status_event(ride.id, status, datetime.fromisoformat(at))
    emitted = LiveRides(get_sync_redis()).ride_changed(ride, event)
    return "emitted" if emitted else "already published"
