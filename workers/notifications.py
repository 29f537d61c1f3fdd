"""Push notifications, on the `notifications` queue (a worker of its own in `make run`, so
a burst of pushes never delays payments): a ride event's pushes logged, then each
delivered to every device of its user, once. Promotions go by the `promotions` queue,
which that worker takes only when `notifications` is empty: a broadcast never delays a
ride's push."""

from __future__ import annotations

import random
import uuid

from sqlmodel import Session

from domain.jobs import Job
from domain.notifications import RideFacts, arriving_push, rating_push, ride_pushes
from domain.rides import RideStatus
from infra import jobs
from infra.models import Rating, Ride
from infra.notifications import deliver, log_pushes, plan_broadcast
from workers.base import Retryable, RetryIn, transactional_task


@transactional_task(Job.NOTIFY_RIDE_EVENT)
def ride_event(session: Session, ride_id: str, status: str) -> int:
    """What the ride's `status` tells its passenger and driver, logged once and queued."""
    ride = session.get(Ride, uuid.UUID(ride_id))
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    pushes = ride_pushes(RideStatus(status), RideFacts.of(ride))
    log_pushes(session, pushes)
    return len(pushes)


@transactional_task(Job.NOTIFY_ARRIVING)
def arriving(session: Session, ride_id: str) -> int:
    """The hot path saw the driver close to the pickup: tell the passenger, if the ride
    is still waiting for them."""
    ride = session.get(Ride, uuid.UUID(ride_id))
    if ride is None or ride.status != RideStatus.ACCEPTED:
        return 0
    log_pushes(session, [arriving_push(RideFacts.of(ride))])
    return 1


@transactional_task(Job.NOTIFY_RATING)
def rating_received(session: Session, rating_id: str) -> int:
    rating = session.get(Rating, uuid.UUID(rating_id))
    if rating is None:
        raise Retryable(f"rating {rating_id} not visible yet")
    log_pushes(session, [rating_push(rating.ratee_id, rating.ride_id, rating.id, rating.stars)])
    return 1


@transactional_task(Job.DELIVER_PUSH, max_retries=8)
def deliver_one(session: Session, notification_id: str) -> str | RetryIn:
    """Deliveries commit on their own as they go (see `infra.notifications.deliver`)."""
    return _deliver(notification_id)


def _deliver(notification_id: str) -> str | RetryIn:
    come_back = deliver(uuid.UUID(notification_id))
    if come_back is False:
        return "done"
    # FCM's Retry-After when it gave one, else a few seconds; jitter spreads a burst
    wait = float(come_back) if come_back is not None and come_back is not True else 5.0
    return RetryIn(min(wait, 300.0) + random.uniform(0, 1))


@transactional_task(Job.BROADCAST)
def broadcast(session: Session, broadcast_id: str) -> str:
    """One batch of a promotional broadcast planned; the next batch is its own job, so a
    large broadcast never holds a worker for long."""
    if plan_broadcast(session, uuid.UUID(broadcast_id)):
        return "planned"
    jobs.enqueue(session, Job.BROADCAST, broadcast_id=broadcast_id)
    return "next batch queued"


@transactional_task(Job.DELIVER_PROMOTION, max_retries=8)
def deliver_promotion(session: Session, notification_id: str) -> str | RetryIn:
    """`notifications.deliver` for promotions, on the low-priority queue."""
    return _deliver(notification_id)
