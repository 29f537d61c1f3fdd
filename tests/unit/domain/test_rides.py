from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from domain import rides
from domain.errors import Forbidden, IllegalTransition
from domain.fares import FareRules, compute_fare
from domain.rides import Actor, RideStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RULES = FareRules()


@dataclass
class FakeRide:
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    status: str = RideStatus.REQUESTED
    passenger_id: uuid.UUID = field(default_factory=uuid.uuid4)
    driver_id: uuid.UUID | None = None
    pickup_lat: float = 0.0
    pickup_lng: float = 0.0
    dropoff_lat: float = 0.0
    dropoff_lng: float = 0.0
    payment: str = "cash"
    payment_method_id: str | None = None
    currency: str = "usd"
    estimate_amount: int = 1_000
    estimate_distance_m: int = 5_000
    estimate_duration_s: int = 600
    fare_amount: int | None = None
    fee_amount: int | None = None
    distance_m: int | None = None
    duration_s: int | None = None
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    created_at: datetime = T0
    updated_at: datetime = T0
    dispatch_deadline: datetime | None = None
    dispatch_wave: int = 0
    route_polyline: str | None = None
    path_points: int | None = None


DRIVER = uuid.uuid4()


def _at(state: RideStatus) -> FakeRide:
    ride = FakeRide()
    path = [RideStatus.ACCEPTED, RideStatus.ARRIVED, RideStatus.IN_PROGRESS, RideStatus.COMPLETED]
    steps = {
        RideStatus.ACCEPTED: lambda: rides.Ride(ride).accept(DRIVER, T0),
        RideStatus.ARRIVED: lambda: rides.Ride(ride).arrive(DRIVER, T0 + timedelta(minutes=3)),
        RideStatus.IN_PROGRESS: lambda: rides.Ride(ride).start(DRIVER, T0 + timedelta(minutes=5)),
        RideStatus.COMPLETED: lambda: rides.Ride(ride).complete(
            DRIVER, T0 + timedelta(minutes=20), RULES
        ),
    }
    for s in path:
        if state == RideStatus.REQUESTED:
            break
        steps[s]()
        if s == state:
            break
    return ride


def test_the_happy_path_records_events_and_timestamps() -> None:
    ride = FakeRide()
    events = [
        rides.Ride(ride).accept(DRIVER, T0),
        rides.Ride(ride).arrive(DRIVER, T0 + timedelta(minutes=3)),
        rides.Ride(ride).start(DRIVER, T0 + timedelta(minutes=5)),
        rides.Ride(ride).complete(DRIVER, T0 + timedelta(minutes=20), RULES),
    ]
    assert [e.name for e in events] == [
        "ride.accepted",
        "ride.arrived",
        "ride.in_progress",
        "ride.completed",
    ]
    assert ride.status == RideStatus.COMPLETED
    assert ride.driver_id == DRIVER
    assert ride.duration_s == 15 * 60
    assert ride.distance_m == 5_000  # the estimate's, nothing travelled was known
    assert ride.fare_amount == compute_fare(RULES, 5_000, 900).total.amount
    assert events[-1].data == {"fare_amount": ride.fare_amount, "currency": "usd"}
    assert ride.updated_at == T0 + timedelta(minutes=20)


def test_completion_uses_the_distance_travelled_when_known() -> None:
    ride = _at(RideStatus.IN_PROGRESS)
    rides.Ride(ride).complete(DRIVER, T0 + timedelta(minutes=20), RULES, travelled_m=8_200)
    assert ride.distance_m == 8_200
    assert ride.fare_amount == compute_fare(RULES, 8_200, 900).total.amount


ACTIONS = {
    "accept": lambda r: rides.Ride(r).accept(DRIVER, T0),
    "arrive": lambda r: rides.Ride(r).arrive(DRIVER, T0),
    "start": lambda r: rides.Ride(r).start(DRIVER, T0),
    "complete": lambda r: rides.Ride(r).complete(DRIVER, T0, RULES),
    "no_show": lambda r: rides.Ride(r).no_show(DRIVER, T0 + timedelta(hours=1), RULES),
    "expire": lambda r: rides.Ride(r).expire(T0),
}
LEGAL = {
    RideStatus.REQUESTED: {"accept", "expire"},
    RideStatus.ACCEPTED: {"arrive"},
    RideStatus.ARRIVED: {"start", "no_show"},
    RideStatus.IN_PROGRESS: {"complete"},
    RideStatus.COMPLETED: set(),
}


@pytest.mark.parametrize("state", list(LEGAL))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_transition_outside_the_machine_is_refused(state: RideStatus, action: str) -> None:
    ride = _at(state)
    if action in LEGAL[state]:
        ACTIONS[action](ride)
        assert ride.status != state
    else:
        before = ride.status
        with pytest.raises(IllegalTransition) as err:
            ACTIONS[action](ride)
        assert err.value.code in ("illegal_transition",)
        assert ride.status == before


def test_only_the_assigned_driver_moves_the_ride() -> None:
    ride = _at(RideStatus.ACCEPTED)
    with pytest.raises(Forbidden):
        rides.Ride(ride).arrive(uuid.uuid4(), T0)


def test_no_show_needs_the_wait() -> None:
    ride = _at(RideStatus.ARRIVED)
    with pytest.raises(IllegalTransition) as err:
        rides.Ride(ride).no_show(DRIVER, ride.arrived_at + timedelta(seconds=299), RULES)  # type: ignore[operator]
    assert err.value.code == "no_show_too_early"
    event = rides.Ride(ride).no_show(DRIVER, ride.arrived_at + timedelta(seconds=300), RULES)  # type: ignore[operator]
    assert ride.status == RideStatus.NO_SHOW
    assert ride.fee_amount == RULES.no_show_fee
    assert event.data["fee_amount"] == RULES.no_show_fee


@pytest.mark.parametrize(
    ("actor", "state", "allowed"),
    [
        (Actor.PASSENGER, RideStatus.REQUESTED, True),
        (Actor.PASSENGER, RideStatus.ACCEPTED, True),
        (Actor.PASSENGER, RideStatus.ARRIVED, True),
        (Actor.PASSENGER, RideStatus.IN_PROGRESS, False),
        (Actor.DRIVER, RideStatus.REQUESTED, False),
        (Actor.DRIVER, RideStatus.ACCEPTED, True),
        (Actor.DRIVER, RideStatus.IN_PROGRESS, False),
        (Actor.ADMIN, RideStatus.IN_PROGRESS, True),
        (Actor.ADMIN, RideStatus.COMPLETED, False),
    ],
)
def test_who_may_cancel_when(actor: Actor, state: RideStatus, allowed: bool) -> None:
    ride = _at(state)
    if allowed:
        rides.Ride(ride).cancel(actor, T0 + timedelta(minutes=1), RULES, "reason")
        assert ride.status == RideStatus.CANCELLED
        assert ride.cancelled_by == actor
    else:
        with pytest.raises(IllegalTransition):
            rides.Ride(ride).cancel(actor, T0, RULES)


def test_cancellation_fee_after_grace() -> None:
    ride = _at(RideStatus.ACCEPTED)
    rides.Ride(ride).cancel(
        Actor.PASSENGER, T0 + timedelta(seconds=RULES.cancellation_grace_s + 1), RULES
    )
    assert ride.fee_amount == RULES.cancellation_fee
    free = _at(RideStatus.ACCEPTED)
    rides.Ride(free).cancel(Actor.PASSENGER, T0 + timedelta(seconds=10), RULES)
    assert free.fee_amount == 0


def test_route_limits() -> None:
    from domain.errors import Unprocessable

    with pytest.raises(Unprocessable):
        rides.check_route(0, 1_000)
    with pytest.raises(Unprocessable):
        rides.check_route(1_001, 1_000)
    rides.check_route(500, 1_000)


def test_updated_at_never_goes_backwards() -> None:
    """A change whose clock was read before it waited for the row lock still comes after
    the change it waited for (the live state keeps the newest version)."""
    ride = FakeRide()
    rides.Ride(ride).accept(DRIVER, T0 + timedelta(seconds=5))
    rides.Ride(ride).cancel(Actor.DRIVER, T0 + timedelta(seconds=4), RULES)
    assert ride.updated_at > T0 + timedelta(seconds=5)
