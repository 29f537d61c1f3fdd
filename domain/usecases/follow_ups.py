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
from typing import Any, TypeVar

from domain.jobs import Job
from domain.notifications import NotificationKind
from domain.rides import Ride, RidePayment, RideStatus
from domain.usecases.ports import UnitOfWork

R = TypeVar("R")


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
    """Called by the unit of work just before it commits: every ride it handed out that
    recorded events is recorded, then what each payment, refund, payout and rating changed
    in it entails (the `collect` of `card_payments`, `settlement`, `ratings`), then each
    notification logged in it has its delivery queued (promotions on their own,
    low-priority queue)."""
    # imported here: those modules are use cases above this table (rides.py imports it)
    from domain.usecases import card_payments, ratings, settlement

    for ride in uow.rides.changed():
        record(uow, ride)
    card_payments.collect(uow)
    settlement.collect(uow)
    ratings.collect(uow)
    for notification_id, kind in uow.pushes.just_logged():  # last: the steps above log pushes
        task = Job.DELIVER_PROMOTION if kind == NotificationKind.PROMOTION else Job.DELIVER_PUSH
        uow.jobs.enqueue(task, notification_id=str(notification_id))


class Handed:
    """The rows a repository handed out in one unit of work, each with the values of
    `fields` it had then: what changed since is what the unit of work follows up."""

    def __init__(self, *fields: str) -> None:
        self.fields = fields
        self._rows: dict[object, tuple[Any, dict[str, Any]]] = {}

    def out(self, row: R) -> R:
        if row is not None and row.id not in self._rows:  # type: ignore[attr-defined]
            self._rows[row.id] = (row, self._values(row))  # type: ignore[attr-defined]
        return row

    def all_out(self, rows: list[R]) -> list[R]:
        return [self.out(r) for r in rows]

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        """Each row changed since it was handed out (or since the last call), with what it
        was; from now on compared with what it is."""
        out = []
        for key, (row, was) in self._rows.items():
            now = self._values(row)
            if now != was:
                out.append((row, was))
                self._rows[key] = (row, now)
        return out

    def _values(self, row: Any) -> dict[str, Any]:
        return {f: getattr(row, f) for f in self.fields}
