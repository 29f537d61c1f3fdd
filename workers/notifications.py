"""Push notifications, on the `notifications` queue (a worker of its own in `make run`, so
a burst of pushes never delays payments): a ride event's pushes logged, then each
delivered to every device of its user, once."""

from __future__ import annotations

import random
import uuid

from sqlmodel import Session

from domain.notifications import RideFacts, ride_pushes
from domain.rides import RideStatus
from infra import jobs
from infra.models import Ride
from infra.notifications import deliver, log_pushes
from workers.base import Retryable, RetryIn, transactional_task


@transactional_task("notifications.ride_event")
def ride_event(session: Session, ride_id: str, status: str) -> int:
    """What the ride's `status` tells its passenger and driver, logged once and queued."""
    ride = session.get(Ride, uuid.UUID(ride_id))
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    facts = RideFacts(
        id=ride.id,
        passenger_id=ride.passenger_id,
        driver_id=ride.driver_id,
        fare_amount=ride.fare_amount,
        fee_amount=ride.fee_amount,
        currency=ride.currency,
        cancelled_by=ride.cancelled_by,
    )
    ids = log_pushes(session, ride.id, ride_pushes(RideStatus(status), facts))
    for notification_id in ids:
        jobs.enqueue(session, "notifications.deliver", notification_id=notification_id)
    return len(ids)


@transactional_task("notifications.deliver", max_retries=8)
def deliver_one(session: Session, notification_id: str) -> str | RetryIn:
    """Deliveries commit on their own as they go (see `infra.notifications.deliver`)."""
    come_back = deliver(uuid.UUID(notification_id))
    if come_back is False:
        return "done"
    # FCM's Retry-After when it gave one, else a few seconds; jitter spreads a burst
    wait = float(come_back) if come_back is not None and come_back is not True else 5.0
    return RetryIn(min(wait, 300.0) + random.uniform(0, 1))
