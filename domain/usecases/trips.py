"""After a ride changed: its live publish repeated (from the outbox), and the path of a
completed trip kept with the ride as an encoded polyline."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from domain.errors import NotVisibleYet
from domain.rides import RideStatus
from domain.trip import encode_polyline
from domain.usecases.ports import UnitOfWork


def store_path(uow: UnitOfWork, ride_id: UUID) -> str:
    ride = uow.rides.get(ride_id, for_update=True)
    if ride is None:
        raise NotVisibleYet(f"ride {ride_id} not visible yet")
    if ride.status != RideStatus.COMPLETED:
        return "not completed"
    if uow.rides.has_path(ride):
        return "already stored"
    points = sorted(uow.paths.points(ride.id, since=ride.started_at), key=lambda p: p.t)
    uow.rides.store_path(ride, encode_polyline((p.lat, p.lng) for p in points), len(points))
    return f"stored {len(points)} points"


def republish(uow: UnitOfWork, ride_id: UUID, status: str, at: datetime) -> str:
    """The ride's facts and its `status` event, for the hot path and the streams. The
    process that made the change did it right after its commit; this repeats it, which
    changes nothing then and repairs a publish lost to a Redis blip."""
    ride = uow.rides.get(ride_id)
    if ride is None:
        raise NotVisibleYet(f"ride {ride_id} not visible yet")
    return "emitted" if uow.live.republish(ride, status, at) else "already published"
