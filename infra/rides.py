"""Rides in SQL: the `RideRepository` port (rows locked where a change is decided, the
one-open-ride rules enforced by unique indexes and answered as conflicts), and a ride's
facts read back from SQL for the hot path when Redis lost them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.errors import Conflict
from domain.rides import DRIVER_ACTIVE, OPEN, RideState, RideStatus
from domain.rides import Ride as RideAggregate
from domain.usecases.ports import RideQuery
from infra.db import newest_first
from infra.live.publisher import ride_facts
from infra.live.rides import LiveRide, LiveRides, ride_facts_fields
from infra.models import Ride
from infra.redis import get_sync_redis

_UNIQUE_CONFLICTS = {
    "uq_rides_open_per_passenger": ("you already have an open ride", "ride_already_open"),
    "uq_rides_active_per_driver": ("you are already on a ride", "driver_busy"),
}


def _conflict_from(exc: IntegrityError) -> Conflict:
    text = str(exc.orig)
    for name, (detail, code) in _UNIQUE_CONFLICTS.items():
        if name in text:
            return Conflict(detail, code=code)
    return Conflict("conflicting update", code="conflict")


class SqlRideRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._seen: dict[UUID, RideAggregate] = {}

    def get(self, ride_id: UUID, *, for_update: bool = False) -> RideState | None:
        stmt = select(Ride).where(Ride.id == ride_id)
        if for_update:
            stmt = stmt.with_for_update()
        return cast(RideState | None, self.session.exec(stmt).first())

    def open_ride_of_passenger(self, passenger_id: UUID) -> RideState | None:
        stmt = select(Ride).where(Ride.passenger_id == passenger_id, col(Ride.status).in_(OPEN))
        return cast(RideState | None, self.session.exec(stmt).first())

    def active_ride_of_driver(self, driver_id: UUID) -> RideState | None:
        stmt = select(Ride).where(Ride.driver_id == driver_id, col(Ride.status).in_(DRIVER_ACTIVE))
        return cast(RideState | None, self.session.exec(stmt).first())

    def lock(self, ride_id: UUID) -> RideAggregate | None:
        row = self.get(ride_id, for_update=True)
        return None if row is None else self._handed_out(row)

    def add(self, **fields: Any) -> RideAggregate:
        row = Ride(**fields)
        self.session.add(row)
        self._flush()
        return self._handed_out(cast(RideState, row))

    def changed(self) -> list[RideAggregate]:
        return [ride for ride in self._seen.values() if ride.events]

    def _handed_out(self, row: RideState) -> RideAggregate:
        # one aggregate per ride and unit of work, however often it is locked
        if row.id not in self._seen:
            self._seen[row.id] = RideAggregate(row)
        return self._seen[row.id]

    def save(self, ride: RideState) -> None:
        self.session.add(ride)
        self._flush()

    def page(self, query: RideQuery) -> list[RideState]:
        """Newest first, keyset-paginated on (created_at, id)."""
        stmt = select(Ride)
        if query.passenger_id is not None:
            stmt = stmt.where(Ride.passenger_id == query.passenger_id)
        if query.driver_id is not None:
            stmt = stmt.where(Ride.driver_id == query.driver_id)
        if query.status is not None:
            stmt = stmt.where(Ride.status == query.status)
        stmt = newest_first(stmt, Ride, query.before, query.limit)
        return cast(list[RideState], list(self.session.exec(stmt).all()))

    def stuck(
        self, unstarted_before: datetime, silent_before: datetime, limit: int
    ) -> list[RideState]:
        awaiting = col(Ride.status).in_(RideStatus.awaiting_pickup_set()) & (
            col(Ride.accepted_at) < unstarted_before
        )
        silent = (col(Ride.status) == RideStatus.IN_PROGRESS) & (
            col(Ride.started_at) < silent_before
        )
        return list(self.session.exec(select(Ride).where(awaiting | silent).limit(limit)).all())

    def has_path(self, ride: RideState) -> bool:
        return cast(Ride, ride).route_polyline is not None

    def store_path(self, ride: RideState, polyline: str, points: int) -> None:
        row = cast(Ride, ride)
        row.route_polyline, row.path_points = polyline, points
        self.session.add(row)

    def _flush(self) -> None:
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise _conflict_from(exc) from exc


def ride_facts_from_sql(ride_id: str) -> LiveRide | None:
    """A ride's facts from SQL when Redis lost them (an old ride, a flushed Redis); they go
    back to Redis for the next reader."""
    from infra.db import session_scope

    try:
        rid = UUID(ride_id)
    except ValueError:
        return None
    with session_scope() as session:
        ride = session.get(Ride, rid)
        if ride is None:
            return None
        facts = ride_facts(ride)
    LiveRides(get_sync_redis()).ride_changed(facts, None)
    return LiveRide.from_hash(ride_facts_fields(facts))
