"""Notification use cases: a user's devices (FCM tokens) and what they were told; what
each ride event and rating tells whom; delivery to the devices; promotional broadcasts."""

from __future__ import annotations

from uuid import UUID

from domain.access import Caller
from domain.errors import NotFound, NotVisibleYet
from domain.jobs import Job
from domain.notifications import RideFacts, arriving_push, rating_push, ride_pushes
from domain.rides import RideStatus
from domain.usecases.ports import BroadcastProgress, ComeBack, PushDeliveries, UnitOfWork


def register_device(uow: UnitOfWork, caller: Caller, token: str, platform: str) -> None:
    """A token registered again moves to its new owner (a phone changed hands)."""
    uow.devices.register(caller.id, token, platform)


def unregister_device(uow: UnitOfWork, caller: Caller, token: str) -> None:
    if not uow.devices.unregister(caller.id, token):
        raise NotFound("device not found", code="device_not_found")


def want_promotions(uow: UnitOfWork, caller: Caller, wanted: bool) -> bool:
    uow.devices.set_promotions(caller.id, wanted)
    return wanted


def broadcast(uow: UnitOfWork, admin: Caller, title: str, body: str) -> BroadcastProgress:
    """A promotional push to every user who opted in, planned and delivered by workers in
    batches, on the low-priority path."""
    broadcast_id = uow.broadcasts.create(title, body, admin.id)
    uow.jobs.enqueue(Job.BROADCAST, broadcast_id=str(broadcast_id))
    return BroadcastProgress(broadcast_id, planned=False, recipients=0, sent=0, queued=0)


def tell_ride_event(uow: UnitOfWork, ride_id: UUID, status: str) -> int:
    """What the ride's `status` tells its passenger and driver, logged once and queued."""
    ride = uow.rides.get(ride_id)
    if ride is None:
        raise NotVisibleYet(f"ride {ride_id} not visible yet")
    pushes = ride_pushes(RideStatus(status), RideFacts.of(ride))
    uow.pushes.log(pushes)
    return len(pushes)


def tell_arriving(uow: UnitOfWork, ride_id: UUID) -> int:
    """The hot path saw the driver close to the pickup: the passenger is told, if the ride
    still waits for the driver."""
    ride = uow.rides.get(ride_id)
    if ride is None or ride.status != RideStatus.ACCEPTED:
        return 0
    uow.pushes.log([arriving_push(RideFacts.of(ride))])
    return 1


def tell_rating(uow: UnitOfWork, rating_id: UUID) -> int:
    rating = uow.ratings.get(rating_id)
    if rating is None:
        raise NotVisibleYet(f"rating {rating_id} not visible yet")
    uow.pushes.log([rating_push(rating.ratee_id, rating.ride_id, rating.id, rating.stars)])
    return 1


def deliver(deliveries: PushDeliveries, notification_id: UUID) -> ComeBack | None:
    """Send a logged push to each of its user's devices that has not had it; None when
    done, else when to come back. A device is sent one notification at most once: a
    delivery claimed and never answered (a crash, a lost reply) is not sent again."""
    found = deliveries.message(notification_id)
    if found is None:
        return None
    push, tokens = found
    if tokens and not deliveries.ready():
        return ComeBack(None)  # FCM is out of reach: nothing claimed
    come_back: ComeBack | None = None
    for token in tokens:
        delivery_id = deliveries.claim(notification_id, token)
        if delivery_id is None:
            continue  # sent, claimed or settled already
        answer = deliveries.send(delivery_id, token, push)
        if answer is not None:
            come_back = answer
    deliveries.settle(notification_id, waiting=come_back is not None)
    return come_back


def plan_broadcast(uow: UnitOfWork, broadcast_id: UUID) -> bool:
    """One batch of a broadcast planned; the next batch is a job of its own, so a large
    broadcast never holds a worker for long. True once every recipient has it."""
    pushes, done = uow.broadcasts.next_batch(broadcast_id)
    uow.pushes.log(pushes)
    if not done:
        uow.jobs.enqueue(Job.BROADCAST, broadcast_id=str(broadcast_id))
    return done
