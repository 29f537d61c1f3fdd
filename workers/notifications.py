"""Push notifications (`domain.usecases.notifications`), on the `notifications` queue (a
worker of its own in `make run`, so a burst of pushes never delays payments): a ride
event's pushes logged, then each delivered to every device of its user, once. Promotions
go by the `promotions` queue, which that worker takes only when `notifications` is
empty: a broadcast never delays a ride's push."""

from __future__ import annotations

import random
import uuid

from domain.jobs import Job
from domain.usecases import notifications as notify
from domain.usecases.ports import UnitOfWork
from infra.unit_of_work import push_deliveries
from workers.base import RetryIn, transactional_task


@transactional_task(Job.NOTIFY_RIDE_EVENT)
def ride_event(uow: UnitOfWork, ride_id: str, status: str) -> int:
    return notify.tell_ride_event(uow, uuid.UUID(ride_id), status)


@transactional_task(Job.NOTIFY_ARRIVING)
def arriving(uow: UnitOfWork, ride_id: str) -> int:
    return notify.tell_arriving(uow, uuid.UUID(ride_id))


@transactional_task(Job.NOTIFY_RATING)
def rating_received(uow: UnitOfWork, rating_id: str) -> int:
    return notify.tell_rating(uow, uuid.UUID(rating_id))


@transactional_task(Job.DELIVER_PUSH, max_retries=8)
def deliver_one(uow: UnitOfWork, notification_id: str) -> str | RetryIn:
    """Deliveries commit on their own as they go (`PushDeliveries`)."""
    return _deliver(notification_id)


def _deliver(notification_id: str) -> str | RetryIn:
    come_back = notify.deliver(push_deliveries(), uuid.UUID(notification_id))
    if come_back is None:
        return "done"
    # FCM's Retry-After when it gave one, else a few seconds; jitter spreads a burst
    wait = come_back.after_s if come_back.after_s is not None else 5.0
    return RetryIn(min(wait, 300.0) + random.uniform(0, 1))


@transactional_task(Job.BROADCAST)
def broadcast(uow: UnitOfWork, broadcast_id: str) -> str:
    """One batch of a promotional broadcast planned; the next batch is its own job."""
    return "planned" if notify.plan_broadcast(uow, uuid.UUID(broadcast_id)) else "next batch queued"


@transactional_task(Job.DELIVER_PROMOTION, max_retries=8)
def deliver_promotion(uow: UnitOfWork, notification_id: str) -> str | RetryIn:
    """`notifications.deliver` for promotions, on the low-priority queue."""
    return _deliver(notification_id)
