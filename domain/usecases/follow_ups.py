"""What follows each ride event: one table, and what the unit of work does with every
ride it handed out when it commits (`collect`), in the API and in the workers alike.

Each follow-up is a job written to the outbox in the ride's own transaction and sent to a
worker after it commits (a crash in between is repaired by the outbox sweep). The live
publish (Redis: the ride's facts for the hot path, its status event on the streams) is
done by the committing process itself, right after the commit, so a passenger's stream
hears of a change at once and no worker is busied with it; its outbox row is completed
then, and only if that publish fails (a Redis blip, a crash) does the sweep hand the job
to a worker, which repeats it idempotently. Push notifications and ratings hang their
jobs here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.jobs import Job
from domain.rides import Ride, RidePayment, RideStatus
from domain.usecases.ports import UnitOfWork


@dataclass(frozen=True, slots=True)
class FollowUp:
    task: str
    card_only: bool = False  # only for rides paid by card
    publish_now: bool = False  # done in-process right after the commit
    with_status: bool = False  # the job is told which status the ride reached


PUBLISH = FollowUp(Job.PUBLISH_RIDE, publish_now=True)
DISPATCH = FollowUp(Job.DISPATCH)
AUTHORIZE = FollowUp(Job.AUTHORIZE_RIDE, card_only=True)
STORE_TRIP = FollowUp(Job.STORE_TRIP)
POST_LEDGER = FollowUp(Job.POST_LEDGER)
SETTLE_CARD = FollowUp(Job.SETTLE_RIDE, card_only=True)
NOTIFY = FollowUp(Job.NOTIFY_RIDE_EVENT, with_status=True)

_ENDED = (PUBLISH, POST_LEDGER, SETTLE_CARD, NOTIFY)

FOLLOW_UPS: dict[RideStatus, tuple[FollowUp, ...]] = {
    RideStatus.REQUESTED: (PUBLISH, DISPATCH, AUTHORIZE),
    RideStatus.ACCEPTED: (PUBLISH, NOTIFY),
    RideStatus.ARRIVED: (PUBLISH, NOTIFY),
    RideStatus.IN_PROGRESS: (PUBLISH, NOTIFY),
    RideStatus.COMPLETED: (PUBLISH, STORE_TRIP, POST_LEDGER, SETTLE_CARD, NOTIFY),
    RideStatus.CANCELLED: _ENDED,
    RideStatus.NO_SHOW: _ENDED,
    RideStatus.EXPIRED: _ENDED,
}


def record(uow: UnitOfWork, ride: Ride) -> None:
    """Save the ride and queue what follows each event it recorded, once.

    The jobs for workers are sent first, then the in-process publish: a rider waiting for
    dispatch should not wait on it (the outbox keeps both either way)."""
    uow.rides.save(ride.state)
    in_process = []
    for event in ride.events:
        for follow_up in FOLLOW_UPS[event.status]:
            if follow_up.card_only and ride.state.payment != RidePayment.CARD:
                continue
            if follow_up.publish_now:
                in_process.append((follow_up, event))
            elif follow_up.with_status:
                uow.jobs.enqueue(follow_up.task, ride_id=str(ride.id), status=str(event.status))
            else:
                uow.jobs.enqueue(follow_up.task, ride_id=str(ride.id))
    for follow_up, event in in_process:
        uow.jobs.run_here(
            follow_up.task,
            uow.live.ride_changed(ride.state, event),
            ride_id=str(ride.id),
            status=str(event.status),
            at=event.at.isoformat(),
        )
    ride.events.clear()


def collect(uow: UnitOfWork) -> None:
    """Record every ride the unit of work handed out that recorded events: called once,
    by the unit of work, just before it commits."""
    for ride in uow.rides.changed():
        record(uow, ride)
