"""Ride follow-ups (`domain.usecases.trips`): the live publish repeated from the outbox,
and a completed trip's path kept with the ride."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.jobs import Job
from domain.usecases import trips
from domain.usecases.ports import UnitOfWork
from workers.base import transactional_task


@transactional_task(Job.STORE_TRIP)
def store_trip(uow: UnitOfWork, ride_id: str) -> str:
    return trips.store_path(uow, uuid.UUID(ride_id))


@transactional_task(Job.PUBLISH_RIDE)
def publish(uow: UnitOfWork, ride_id: str, status: str, at: str) -> str:
    return trips.republish(uow, uuid.UUID(ride_id), status, datetime.fromisoformat(at))
