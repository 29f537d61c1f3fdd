"""After-trip work: the travelled path goes from Redis to the ride, as an encoded polyline."""

from __future__ import annotations

import uuid

from sqlmodel import Session

from domain.rides import RideStatus
from domain.trip import encode_polyline
from infra.models import Ride
from infra.repositories import RedisTripPaths
from infra.settings import get_settings
from workers.base import Retryable, transactional_task


@transactional_task("rides.store_trip")
def store_trip(session: Session, ride_id: str) -> str:
    ride = session.get(Ride, uuid.UUID(ride_id), with_for_update=True)
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    if ride.status != RideStatus.COMPLETED:
        return "not completed"
    if ride.route_polyline is not None:
        return "already stored"
    points = RedisTripPaths(get_settings().ping_rules).points(ride.id)
    points.sort(key=lambda p: p.t)
    ride.route_polyline = encode_polyline((p.lat, p.lng) for p in points)
    ride.path_points = len(points)
    session.add(ride)
    return f"stored {len(points)} points"
