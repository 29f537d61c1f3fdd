"""The ride aggregate's state machine.

`requested -> accepted -> arrived -> in_progress -> completed`, with
`cancelled`, `no_show` and `expired` as the other ends. The functions here act on
anything shaped like `RideState` (the SQL row in production, a dataclass in
tests), check who may do what from which state, change the state and return the
events that happened. They never touch storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from domain.errors import Forbidden, IllegalTransition, Unprocessable
from domain.fares import FareRules, cancellation_fee, compute_fare, no_show_fee


class RideStatus(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    EXPIRED = "expired"


class PaymentKind(StrEnum):
    CASH = "cash"
    CARD = "card"


class Actor(StrEnum):
    PASSENGER = "passenger"
    DRIVER = "driver"
    ADMIN = "admin"


TERMINAL = frozenset(
    {RideStatus.COMPLETED, RideStatus.CANCELLED, RideStatus.NO_SHOW, RideStatus.EXPIRED}
)
OPEN = frozenset(set(RideStatus) - TERMINAL)
#: states in which a driver is bound to the ride
DRIVER_ACTIVE = frozenset({RideStatus.ACCEPTED, RideStatus.ARRIVED, RideStatus.IN_PROGRESS})

_CANCELLABLE: dict[Actor, frozenset[RideStatus]] = {
    Actor.PASSENGER: frozenset({RideStatus.REQUESTED, RideStatus.ACCEPTED, RideStatus.ARRIVED}),
    Actor.DRIVER: frozenset({RideStatus.ACCEPTED, RideStatus.ARRIVED}),
    Actor.ADMIN: frozenset(
        {RideStatus.REQUESTED, RideStatus.ACCEPTED, RideStatus.ARRIVED, RideStatus.IN_PROGRESS}
    ),
}


class RideState(Protocol):
    id: UUID
    status: str
    passenger_id: UUID
    driver_id: UUID | None
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float
    dropoff_lng: float
    payment: str
    currency: str
    estimate_amount: int
    estimate_distance_m: int
    estimate_duration_s: int
    fare_amount: int | None
    fee_amount: int | None
    distance_m: int | None
    duration_s: int | None
    accepted_at: datetime | None
    arrived_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    cancelled_by: str | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RideEvent:
    """Something that happened to a ride; the application turns these into jobs and streams."""

    name: str
    ride_id: UUID
    status: RideStatus
    at: datetime
    data: dict[str, object] = field(default_factory=dict)


def _require(ride: RideState, allowed: frozenset[RideStatus], action: str) -> None:
    if ride.status not in allowed:
        raise IllegalTransition(f"cannot {action} a ride that is {ride.status}")


def _require_driver(ride: RideState, driver_id: UUID) -> None:
    if ride.driver_id != driver_id:
        # The API shows a ride that is not yours as a 404; this is the guard for callers
        # that reached the aggregate another way.
        raise Forbidden("this ride is assigned to another driver", code="not_your_ride")


def _move(ride: RideState, to: RideStatus, now: datetime) -> RideEvent:
    ride.status = to
    ride.updated_at = now
    return RideEvent(name=f"ride.{to}", ride_id=ride.id, status=to, at=now)


def accept(ride: RideState, driver_id: UUID, now: datetime) -> RideEvent:
    _require(ride, frozenset({RideStatus.REQUESTED}), "accept")
    ride.driver_id = driver_id
    ride.accepted_at = now
    return _move(ride, RideStatus.ACCEPTED, now)


def arrive(ride: RideState, driver_id: UUID, now: datetime) -> RideEvent:
    _require(ride, frozenset({RideStatus.ACCEPTED}), "mark arrival for")
    _require_driver(ride, driver_id)
    ride.arrived_at = now
    return _move(ride, RideStatus.ARRIVED, now)


def start(ride: RideState, driver_id: UUID, now: datetime) -> RideEvent:
    _require(ride, frozenset({RideStatus.ARRIVED}), "start")
    _require_driver(ride, driver_id)
    ride.started_at = now
    return _move(ride, RideStatus.IN_PROGRESS, now)


def complete(
    ride: RideState,
    driver_id: UUID,
    now: datetime,
    rules: FareRules,
    *,
    travelled_m: int | None = None,
) -> RideEvent:
    """Close the trip and fix the final fare.

    The fare uses the distance actually travelled when the trip's path gave one,
    and the time between start and completion; otherwise the estimate's figures.
    """
    _require(ride, frozenset({RideStatus.IN_PROGRESS}), "complete")
    _require_driver(ride, driver_id)
    distance = travelled_m if travelled_m is not None else ride.estimate_distance_m
    if ride.started_at is not None:
        duration = max(0, round((now - ride.started_at).total_seconds()))
    else:
        duration = ride.estimate_duration_s
    fare = compute_fare(rules, distance, duration).total
    ride.distance_m = distance
    ride.duration_s = duration
    ride.fare_amount = fare.amount
    ride.completed_at = now
    event = _move(ride, RideStatus.COMPLETED, now)
    return RideEvent(
        name=event.name,
        ride_id=ride.id,
        status=event.status,
        at=now,
        data={"fare_amount": fare.amount, "currency": fare.currency},
    )


def no_show(ride: RideState, driver_id: UUID, now: datetime, rules: FareRules) -> RideEvent:
    """The driver waited at the pickup long enough and the passenger never came."""
    _require(ride, frozenset({RideStatus.ARRIVED}), "mark a no-show for")
    _require_driver(ride, driver_id)
    assert ride.arrived_at is not None
    waited = (now - ride.arrived_at).total_seconds()
    if waited < rules.no_show_wait_s:
        raise IllegalTransition(
            f"a no-show can be marked {rules.no_show_wait_s} s after arrival; "
            f"waited {int(waited)} s",
            code="no_show_too_early",
        )
    fee = no_show_fee(rules)
    ride.fee_amount = fee.amount
    ride.cancelled_at = now
    ride.cancelled_by = Actor.DRIVER
    event = _move(ride, RideStatus.NO_SHOW, now)
    return RideEvent(
        name=event.name,
        ride_id=ride.id,
        status=event.status,
        at=now,
        data={"fee_amount": fee.amount, "currency": fee.currency},
    )


def cancel(
    ride: RideState, actor: Actor, now: datetime, rules: FareRules, reason: str | None = None
) -> RideEvent:
    allowed = _CANCELLABLE[actor]
    if ride.status not in allowed:
        raise IllegalTransition(
            f"a {actor} cannot cancel a ride that is {ride.status}", code="illegal_transition"
        )
    since = (now - ride.accepted_at).total_seconds() if ride.accepted_at else None
    fee = cancellation_fee(
        rules,
        by_passenger=actor is Actor.PASSENGER,
        driver_assigned=ride.driver_id is not None,
        seconds_since_assignment=since,
    )
    ride.fee_amount = fee.amount
    ride.cancelled_at = now
    ride.cancelled_by = actor
    ride.cancel_reason = reason
    event = _move(ride, RideStatus.CANCELLED, now)
    return RideEvent(
        name=event.name,
        ride_id=ride.id,
        status=event.status,
        at=now,
        data={"fee_amount": fee.amount, "currency": fee.currency, "by": str(actor)},
    )


def expire(ride: RideState, now: datetime) -> RideEvent:
    _require(ride, frozenset({RideStatus.REQUESTED}), "expire")
    return _move(ride, RideStatus.EXPIRED, now)


def check_route(distance_m: int, max_distance_m: int) -> None:
    if distance_m > max_distance_m:
        raise Unprocessable(
            f"pickup and dropoff are {distance_m} m apart; the limit is {max_distance_m} m",
            code="route_too_long",
        )
    if distance_m < 1:
        raise Unprocessable("pickup and dropoff are the same place", code="route_too_short")
