"""The ride use cases against in-memory ports: no database needed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from domain import services
from domain.errors import Conflict, NotFound, Unprocessable
from domain.fares import FareRules
from domain.geo import Point, RouteModel
from domain.rides import Actor, PaymentKind, RideState, RideStatus
from tests.domain.test_rides import FakeRide

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryRides:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, FakeRide] = {}

    def get(self, ride_id: uuid.UUID, *, for_update: bool = False) -> RideState | None:
        return self.rows.get(ride_id)

    def open_ride_of_passenger(self, passenger_id: uuid.UUID) -> RideState | None:
        return next(
            (
                r
                for r in self.rows.values()
                if r.passenger_id == passenger_id
                and r.status in {"requested", "accepted", "arrived", "in_progress"}
            ),
            None,
        )

    def active_ride_of_driver(self, driver_id: uuid.UUID) -> RideState | None:
        return next(
            (
                r
                for r in self.rows.values()
                if r.driver_id == driver_id and r.status in {"accepted", "arrived", "in_progress"}
            ),
            None,
        )

    def create(self, **fields: Any) -> RideState:
        ride = FakeRide(**fields)
        self.rows[ride.id] = ride
        return ride

    def save(self, ride: RideState) -> None:
        pass


class MemoryJobs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def enqueue(self, task: str, **kwargs: Any) -> None:
        self.sent.append((task, kwargs))


def _request(
    repo: MemoryRides, jobs: MemoryJobs, caller: services.Caller, **over: Any
) -> RideState:
    args: dict[str, Any] = dict(
        pickup=Point(52.52, 13.405),
        dropoff=Point(52.50, 13.45),
        payment=PaymentKind.CASH,
        payment_method_id=None,
        now=NOW,
        max_route_m=200_000,
        card_payments_enabled=False,
    )
    args.update(over)
    return services.request_ride(repo, jobs, FareRules(), RouteModel(), caller, **args)


def test_request_then_a_second_open_ride_is_refused() -> None:
    repo, jobs = MemoryRides(), MemoryJobs()
    p = services.Caller(uuid.uuid4(), Actor.PASSENGER)
    ride = _request(repo, jobs, p)
    assert ride.status == RideStatus.REQUESTED
    assert ride.estimate_amount > 0
    with pytest.raises(Conflict) as err:
        _request(repo, jobs, p)
    assert err.value.code == "ride_already_open"


def test_card_needs_stripe() -> None:
    with pytest.raises(Unprocessable) as err:
        _request(
            MemoryRides(),
            MemoryJobs(),
            services.Caller(uuid.uuid4(), Actor.PASSENGER),
            payment=PaymentKind.CARD,
        )
    assert err.value.code == "card_unavailable"


def test_terminal_events_enqueue_the_ledger_posting_once() -> None:
    repo, jobs = MemoryRides(), MemoryJobs()
    p = services.Caller(uuid.uuid4(), Actor.PASSENGER)
    d = services.Caller(uuid.uuid4(), Actor.DRIVER)
    ride = _request(repo, jobs, p)
    services.accept_ride(repo, jobs, d, ride.id, NOW)
    for action in ("arrive", "start"):
        services.driver_transition(repo, jobs, FareRules(), d, ride.id, action, NOW)
    assert jobs.sent == [("dispatch.advance", {"ride_id": str(ride.id)})]
    jobs.sent.clear()
    services.driver_transition(repo, jobs, FareRules(), d, ride.id, "complete", NOW)
    assert jobs.sent == [
        ("rides.store_trip", {"ride_id": str(ride.id)}),
        ("ledger.post_ride", {"ride_id": str(ride.id)}),
    ]


def test_visibility() -> None:
    repo, jobs = MemoryRides(), MemoryJobs()
    p = services.Caller(uuid.uuid4(), Actor.PASSENGER)
    ride = _request(repo, jobs, p)
    stranger = services.Caller(uuid.uuid4(), Actor.PASSENGER)
    with pytest.raises(NotFound):
        services.get_ride(repo, stranger, ride.id)
    admin = services.Caller(uuid.uuid4(), Actor.ADMIN)
    assert services.get_ride(repo, admin, ride.id) is ride
    d1 = services.Caller(uuid.uuid4(), Actor.DRIVER)
    d2 = services.Caller(uuid.uuid4(), Actor.DRIVER)
    services.accept_ride(repo, jobs, d1, ride.id, NOW)
    with pytest.raises(NotFound):
        services.get_ride(repo, d2, ride.id)
    with pytest.raises(Conflict) as err:
        services.accept_ride(repo, jobs, d2, ride.id, NOW)
    assert err.value.code == "ride_taken"
