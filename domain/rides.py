"""The ride aggregate: its state machine, the status sets, and the events it records.

`requested -> accepted -> arrived -> in_progress -> completed`, with `cancelled`,
`no_show` and `expired` as the other ends. `Ride` wraps anything shaped like
`RideState` (the SQL row in production, a dataclass in tests); each of its methods checks
who may do what from which state, changes the state and appends a `RideEvent` to
`events`. What follows an event (live publish, dispatch, ledger, payments, ...) is not
decided here: the use-case layer's table of follow-ups maps each event to its jobs.
The status sets below are the only spelling of "open", "active" and "terminal": SQL
indexes, the Redis scripts and the API all take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol
from uuid import UUID

from domain.access import Actor
from domain.errors import Forbidden, IllegalTransition, Unprocessable
from domain.fares import FareRules, cancellation_fee, compute_fare, no_show_fee


class RideStatus(StrEnum):
    """Where a ride is: `requested` → `accepted` → `arrived` → `in_progress` →
    `completed`; or `cancelled`, `no_show` (the passenger never came), `expired` (no
    driver was found)."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """The ride is over: nothing moves it again."""
        return self in TERMINAL

    @property
    def driver_bound(self) -> bool:
        """A driver is bound to the ride (accepted, arrived, in progress)."""
        return self in DRIVER_ACTIVE

    @property
    def awaiting_pickup(self) -> bool:
        """A driver has the ride and the trip has not started (accepted, arrived)."""
        return self in (RideStatus.ACCEPTED, RideStatus.ARRIVED)

    @property
    def ended_unfinished(self) -> bool:
        """Ended without a trip by someone's doing (cancelled, no-show): a fee may apply."""
        return self in (RideStatus.CANCELLED, RideStatus.NO_SHOW)

    @property
    def gone(self) -> bool:
        """Ended before any driver could serve it (cancelled, expired)."""
        return self in (RideStatus.CANCELLED, RideStatus.EXPIRED)

    @classmethod
    def awaiting_pickup_set(cls) -> frozenset[RideStatus]:
        return frozenset(s for s in cls if s.awaiting_pickup)


class RidePayment(StrEnum):
    """How the passenger pays for the ride."""

    CASH = "cash"
    CARD = "card"


TERMINAL = frozenset(
    {RideStatus.COMPLETED, RideStatus.CANCELLED, RideStatus.NO_SHOW, RideStatus.EXPIRED}
)
OPEN = frozenset(set(RideStatus) - TERMINAL)
#: states in which a driver is bound to the ride
DRIVER_ACTIVE = frozenset({RideStatus.ACCEPTED, RideStatus.ARRIVED, RideStatus.IN_PROGRESS})

CANCELLABLE_BY: dict[Actor, frozenset[RideStatus]] = {
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


_TICK = timedelta(microseconds=1)


class Ride:
    """The aggregate: every change of a ride goes through one of these methods."""

    def __init__(self, state: RideState) -> None:
        self.state = state
        self.events: list[RideEvent] = []

    @property
    def id(self) -> UUID:
        return self.state.id

    @property
    def status(self) -> RideStatus:
        return RideStatus(self.state.status)

    def _require(self, allowed: frozenset[RideStatus], action: str) -> None:
        if self.state.status not in allowed:
            raise IllegalTransition(f"cannot {action} a ride that is {self.state.status}")

    def _require_driver(self, driver_id: UUID) -> None:
        if self.state.driver_id != driver_id:
            # The API shows a ride that is not yours as a 404; this is the guard for
            # callers that reached the aggregate another way.
            raise Forbidden("this ride is assigned to another driver", code="not_your_ride")

    def _move(self, to: RideStatus, now: datetime, **data: object) -> RideEvent:
        self.state.status = to
        # Never backwards, even when this request read the clock before waiting for the
        # row lock behind another change: `updated_at` orders a ride's versions (the live
        # state keeps the newest), and changes are serialized by that lock.
        self.state.updated_at = max(now, self.state.updated_at + _TICK)
        event = RideEvent(name=f"ride.{to}", ride_id=self.state.id, status=to, at=now, data=data)
        self.events.append(event)
        return event

    def requested(self, now: datetime) -> RideEvent:
        """Record the creation of a ride made in the `requested` state."""
        self._require(frozenset({RideStatus.REQUESTED}), "request")
        return self._move(RideStatus.REQUESTED, now)

    def accept(self, driver_id: UUID, now: datetime) -> RideEvent:
        self._require(frozenset({RideStatus.REQUESTED}), "accept")
        self.state.driver_id = driver_id
        self.state.accepted_at = now
        return self._move(RideStatus.ACCEPTED, now)

    def arrive(self, driver_id: UUID, now: datetime) -> RideEvent:
        self._require(frozenset({RideStatus.ACCEPTED}), "mark arrival for")
        self._require_driver(driver_id)
        self.state.arrived_at = now
        return self._move(RideStatus.ARRIVED, now)

    def start(self, driver_id: UUID, now: datetime) -> RideEvent:
        self._require(frozenset({RideStatus.ARRIVED}), "start")
        self._require_driver(driver_id)
        self.state.started_at = now
        return self._move(RideStatus.IN_PROGRESS, now)

    def complete(
        self, driver_id: UUID, now: datetime, rules: FareRules, *, travelled_m: int | None = None
    ) -> RideEvent:
        """Close the trip and fix the final fare.

        The fare uses the distance actually travelled when the trip's path gave one,
        and the time between start and completion; otherwise the estimate's figures.
        """
        self._require(frozenset({RideStatus.IN_PROGRESS}), "complete")
        self._require_driver(driver_id)
        return self._finish(now, now, rules, travelled_m)

    def close_silent(
        self, now: datetime, last_seen: datetime, rules: FareRules, *, travelled_m: int | None
    ) -> RideEvent:
        """The system ends a trip whose driver went silent (no ping for hours): completed,
        with the fare for the distance tracked and the time until the driver was last seen
        (never for the hours of silence)."""
        self._require(frozenset({RideStatus.IN_PROGRESS}), "close")
        return self._finish(now, last_seen, rules, travelled_m)

    def _finish(
        self, now: datetime, until: datetime, rules: FareRules, travelled_m: int | None
    ) -> RideEvent:
        ride = self.state
        distance = travelled_m if travelled_m is not None else ride.estimate_distance_m
        if ride.started_at is not None:
            duration = max(0, round((until - ride.started_at).total_seconds()))
        else:
            duration = ride.estimate_duration_s
        fare = compute_fare(rules, distance, duration).total
        ride.distance_m = distance
        ride.duration_s = duration
        ride.fare_amount = fare.amount
        ride.completed_at = now
        return self._move(
            RideStatus.COMPLETED, now, fare_amount=fare.amount, currency=fare.currency
        )

    def no_show(self, driver_id: UUID, now: datetime, rules: FareRules) -> RideEvent:
        """The driver waited at the pickup long enough and the passenger never came."""
        self._require(frozenset({RideStatus.ARRIVED}), "mark a no-show for")
        self._require_driver(driver_id)
        ride = self.state
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
        return self._move(RideStatus.NO_SHOW, now, fee_amount=fee.amount, currency=fee.currency)

    def cancel(
        self, actor: Actor, now: datetime, rules: FareRules, reason: str | None = None
    ) -> RideEvent:
        ride = self.state
        if ride.status not in CANCELLABLE_BY[actor]:
            raise IllegalTransition(
                f"a {actor} cannot cancel a ride that is {ride.status}",
                code="illegal_transition",
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
        return self._move(
            RideStatus.CANCELLED, now, fee_amount=fee.amount, currency=fee.currency, by=str(actor)
        )

    def expire(self, now: datetime) -> RideEvent:
        """Dispatch found no driver in time."""
        self._require(frozenset({RideStatus.REQUESTED}), "expire")
        return self._move(RideStatus.EXPIRED, now)


def check_route(distance_m: int, max_distance_m: int) -> None:
    if distance_m > max_distance_m:
        raise Unprocessable(
            f"pickup and dropoff are {distance_m} m apart; the limit is {max_distance_m} m",
            code="route_too_long",
        )
    if distance_m < 1:
        raise Unprocessable("pickup and dropoff are the same place", code="route_too_short")
