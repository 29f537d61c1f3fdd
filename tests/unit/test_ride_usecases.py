"""The use cases against a fake unit of work: every ride transition, from every entry point
(the API's and the workers'), and the jobs each one enqueues, read off the one table."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from domain.access import SYSTEM, Access, Actor, Caller
from domain.errors import Conflict, NotFound, Unprocessable
from domain.geo import Point
from domain.rides import RidePayment, RideState, RideStatus
from domain.usecases import rides as use
from domain.usecases.context import Context
from domain.usecases.follow_ups import FOLLOW_UPS
from tests.fakes import FakeUnitOfWork

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CTX = Context(now=NOW)


def _passenger() -> Caller:
    return Caller(uuid.uuid4(), Actor.PASSENGER)


def _driver() -> Caller:
    return Caller(uuid.uuid4(), Actor.DRIVER)


def _request(uow: FakeUnitOfWork, p: Caller, payment: RidePayment = RidePayment.CASH) -> RideState:
    req = use.RideRequest(Point(52.52, 13.405), Point(52.50, 13.45), payment)
    return use.request_ride(uow, CTX, p, req)


def _expected(status: RideStatus, payment: RidePayment) -> list[str]:
    """The table's jobs for a ride paid this way: the workers' first, then the publish."""
    due = [f for f in FOLLOW_UPS[status] if not (f.card_only and payment is not RidePayment.CARD)]
    return [f.task for f in due if not f.publish_now] + [f.task for f in due if f.publish_now]


def _accept(uow: FakeUnitOfWork, ride: RideState, d: Caller) -> None:
    uow.offers.grant(ride.id, d.id, NOW + timedelta(seconds=15))
    use.accept(uow, CTX, d, ride.id)


# (name, steps to reach the state before, the step under test, its resulting status)
Step = Callable[[FakeUnitOfWork, RideState, Caller, Caller], object]
LATER = CTX.at(NOW + timedelta(minutes=10))
WALK: list[tuple[str, list[Step], Step, RideStatus]] = [
    ("accept (API)", [], lambda u, r, p, d: _accept(u, r, d), RideStatus.ACCEPTED),
    (
        "arrive (API)",
        [lambda u, r, p, d: _accept(u, r, d)],
        lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.ARRIVE),
        RideStatus.ARRIVED,
    ),
    (
        "start (API)",
        [
            lambda u, r, p, d: _accept(u, r, d),
            lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.ARRIVE),
        ],
        lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.START),
        RideStatus.IN_PROGRESS,
    ),
    (
        "complete (API)",
        [
            lambda u, r, p, d: _accept(u, r, d),
            lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.ARRIVE),
            lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.START),
        ],
        lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.COMPLETE),
        RideStatus.COMPLETED,
    ),
    (
        "no-show (API)",
        [
            lambda u, r, p, d: _accept(u, r, d),
            lambda u, r, p, d: use.driver_step(u, CTX, d, r.id, use.DriverStep.ARRIVE),
        ],
        lambda u, r, p, d: use.driver_step(u, LATER, d, r.id, use.DriverStep.NO_SHOW),
        RideStatus.NO_SHOW,
    ),
    (
        "passenger cancels (API)",
        [],
        lambda u, r, p, d: use.cancel(u, CTX, p, r.id, "changed my mind"),
        RideStatus.CANCELLED,
    ),
    (
        "driver cancels (API)",
        [lambda u, r, p, d: _accept(u, r, d)],
        lambda u, r, p, d: use.cancel(u, CTX, d, r.id, None),
        RideStatus.CANCELLED,
    ),
    (
        "admin cancels (API)",
        [],
        lambda u, r, p, d: use.cancel(u, CTX, Caller(uuid.uuid4(), Actor.ADMIN), r.id, None),
        RideStatus.CANCELLED,
    ),
    (
        "dispatch expires it (worker)",
        [],
        lambda u, r, p, d: use.expire(u, CTX, r.id),
        RideStatus.EXPIRED,
    ),
    (
        "a declined hold cancels it (worker)",
        [],
        lambda u, r, p, d: use.cancel_unpaid(u, CTX, r.id, "card authorization failed"),
        RideStatus.CANCELLED,
    ),
]


@pytest.mark.parametrize("payment", list(RidePayment))
@pytest.mark.parametrize(("name", "before", "step", "status"), WALK, ids=[w[0] for w in WALK])
def test_every_transition_enqueues_its_follow_ups(
    payment: RidePayment, name: str, before: list[Step], step: Step, status: RideStatus
) -> None:
    uow, p, d = FakeUnitOfWork(), _passenger(), _driver()
    uow.payments.customers[p.id] = f"cus_{p.id.hex[:8]}"
    ride = _request(uow, p, payment)
    assert uow.jobs.tasks == []  # nothing is sent before the commit
    uow.commit()
    assert uow.jobs.tasks == _expected(RideStatus.REQUESTED, payment)
    for prep in before:
        prep(uow, ride, p, d)
        uow.commit()
    uow.jobs.sent.clear()
    uow.live.published.clear()
    step(uow, ride, p, d)
    uow.commit()
    assert ride.status == status
    assert uow.jobs.tasks == _expected(status, payment), name
    assert uow.live.published == [(ride.id, status)]
    for task, kwargs in uow.jobs.sent:
        assert kwargs["ride_id"] == str(ride.id)
        if task == "rides.publish":
            assert kwargs["status"] == status


def test_the_table_covers_every_status() -> None:
    assert set(FOLLOW_UPS) == set(RideStatus)
    for status, follow_ups in FOLLOW_UPS.items():
        assert follow_ups[0].task == "rides.publish", status


def test_request_then_a_second_open_ride_is_refused() -> None:
    uow, p = FakeUnitOfWork(), _passenger()
    ride = _request(uow, p)
    assert ride.status == RideStatus.REQUESTED
    assert ride.estimate_amount > 0
    with pytest.raises(Conflict) as err:
        _request(uow, p)
    assert err.value.code == "ride_already_open"


def test_card_needs_a_saved_card() -> None:
    with pytest.raises(Unprocessable) as err:
        _request(FakeUnitOfWork(), _passenger(), RidePayment.CARD)
    assert err.value.code == "no_card"


def test_an_outstanding_balance_blocks_the_next_request() -> None:
    uow, p = FakeUnitOfWork(), _passenger()
    uow.payments.owed[p.id] = 450
    with pytest.raises(Conflict) as err:
        _request(uow, p)
    assert err.value.code == "outstanding_balance"


def test_one_visibility_rule() -> None:
    uow, p = FakeUnitOfWork(), _passenger()
    ride = _request(uow, p)
    with pytest.raises(NotFound):
        use.view_ride(uow, CTX, _passenger(), ride.id)
    assert use.view_ride(uow, CTX, Caller(uuid.uuid4(), Actor.ADMIN), ride.id).access is (
        Access.ADMIN
    )
    assert use.view_ride(uow, CTX, p, ride.id).access is Access.PARTICIPANT
    d1, d2, d3 = _driver(), _driver(), _driver()
    with pytest.raises(NotFound):  # no offer: a requested ride is not every driver's
        use.view_ride(uow, CTX, d1, ride.id)
    uow.offers.grant(ride.id, d1.id, NOW + timedelta(seconds=15))
    uow.offers.grant(ride.id, d2.id, NOW + timedelta(seconds=15))
    view = use.view_ride(uow, CTX, d1, ride.id)
    assert view.access is Access.OFFER
    assert view.offer_expires_at == NOW + timedelta(seconds=15)
    with pytest.raises(NotFound):  # an expired offer shows nothing
        use.view_ride(uow, CTX.at(NOW + timedelta(seconds=16)), d1, ride.id)
    use.accept(uow, CTX, d1, ride.id)
    assert use.view_ride(uow, CTX, d1, ride.id).access is Access.PARTICIPANT
    for other in (d2, d3):
        with pytest.raises(NotFound):
            use.view_ride(uow, CTX, other, ride.id)
    with pytest.raises(Conflict) as err:
        use.accept(uow, CTX, d2, ride.id)
    assert err.value.code == "ride_taken"


def test_system_cancellation_leaves_an_ended_ride_alone() -> None:
    uow, p = FakeUnitOfWork(), _passenger()
    ride = _request(uow, p)
    use.cancel(uow, CTX, p, ride.id, None)
    uow.commit()
    uow.jobs.sent.clear()
    assert use.cancel_unpaid(uow, CTX, ride.id, "card declined") is False
    uow.commit()
    assert uow.jobs.sent == []
    assert SYSTEM.role is Actor.ADMIN


def test_a_ride_changed_on_a_path_that_records_nothing_still_gets_its_follow_ups() -> None:
    """The unit of work records every ride it handed out: a new path that changes a ride
    through its aggregate and never saves it or queues anything still has it saved and
    followed up when it commits, once."""
    uow, p = FakeUnitOfWork(), _passenger()
    ride = _request(uow, p)
    uow.commit()
    uow.jobs.sent.clear()
    aggregate = uow.rides.lock(ride.id)
    assert aggregate is not None
    aggregate.expire(NOW)  # and nothing else
    uow.commit()
    assert uow.jobs.tasks == _expected(RideStatus.EXPIRED, RidePayment.CASH)
    uow.commit()  # a second commit has nothing new to record
    assert uow.jobs.tasks == _expected(RideStatus.EXPIRED, RidePayment.CASH)
