"""Ride use cases, written against small ports that `infra/` implements.

The API calls these with a repository and a job queue bound to its
transaction; tests call them with in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain import rides
from domain.errors import Conflict, IllegalTransition, NotFound, RateLimited, Unprocessable
from domain.fares import FareRules, compute_fare, hold_amount
from domain.geo import Point, RouteModel
from domain.ledger import JournalEntry, cash_collected_entry
from domain.money import Money
from domain.rides import Actor, PaymentKind, RideEvent, RideState, RideStatus


class RideRepository(Protocol):
    def get(self, ride_id: UUID, *, for_update: bool = False) -> RideState | None: ...
    def open_ride_of_passenger(self, passenger_id: UUID) -> RideState | None: ...
    def active_ride_of_driver(self, driver_id: UUID) -> RideState | None: ...
    def create(self, **fields: Any) -> RideState: ...
    def save(self, ride: RideState) -> None: ...


class JobQueue(Protocol):
    def enqueue(self, task: str, **kwargs: Any) -> None: ...


class LiveState(Protocol):
    """What the hot path (pings, SSE, polling) must learn of a ride once it is committed."""

    def ride_changed(self, ride: RideState, event: RideEvent | None) -> None: ...


class OfferBook(Protocol):
    """The offers dispatch made: a driver accepts a ride only with an open offer for it."""

    def take(self, ride: RideState, driver_id: UUID, now: datetime) -> None:
        """Mark the driver's open offer accepted; raise Conflict if they hold none."""

    def decline(self, ride: RideState, driver_id: UUID, now: datetime) -> None: ...

    def withdraw_all(self, ride: RideState, reason: str, now: datetime) -> None: ...


class PaymentBook(Protocol):
    """Card payments as the ride use cases see them (Stripe is behind workers)."""

    def outstanding(self, passenger_id: UUID) -> int:
        """Minor units the passenger owes from failed charges."""

    def can_charge(self, passenger_id: UUID) -> bool:
        """The passenger has saved a card (a Stripe customer exists)."""

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        """Record the authorization to make for the ride (a worker asks Stripe)."""


class Velocity(Protocol):
    """Fraud basics: how often a rider did something lately."""

    def hit(self, what: str, subject: UUID, limit: int, window_s: int) -> int:
        """Count one `what` for `subject`; 0 if within `limit` per window, else the
        seconds until the window resets."""

    def count(self, what: str, subject: UUID, window_s: int) -> int: ...


@dataclass(frozen=True, slots=True)
class FraudRules:
    rides_per_hour: int = 10
    failed_payments_per_hour: int = 3
    max_ride_amount: int = 50_000  # minor units


class TripPaths(Protocol):
    def travelled_m(self, ride_id: UUID) -> int | None: ...


class _NoLive:
    def ride_changed(self, ride: RideState, event: RideEvent | None) -> None:
        return None


NO_LIVE: LiveState = _NoLive()


@dataclass(frozen=True, slots=True)
class Caller:
    id: UUID
    role: Actor


@dataclass(frozen=True, slots=True)
class Estimate:
    amount: int
    currency: str
    distance_m: int
    duration_s: int


def estimate(
    rules: FareRules, route: RouteModel, pickup: Point, dropoff: Point, max_route_m: int
) -> Estimate:
    distance = route.road_distance_m(pickup, dropoff)
    rides.check_route(distance, max_route_m)
    duration = route.duration_s(distance)
    fare = compute_fare(rules, distance, duration).total
    return Estimate(fare.amount, fare.currency, distance, duration)


def can_see(ride: RideState, caller: Caller) -> bool:
    if caller.role is Actor.ADMIN:
        return True
    if caller.role is Actor.PASSENGER:
        return ride.passenger_id == caller.id
    # Until dispatch offers rides, any driver may see (and accept) a requested ride.
    return ride.driver_id == caller.id or ride.status == RideStatus.REQUESTED


def get_ride(
    repo: RideRepository, caller: Caller, ride_id: UUID, *, lock: bool = False
) -> RideState:
    ride = repo.get(ride_id, for_update=lock)
    if ride is None or not can_see(ride, caller):
        raise NotFound("ride not found", code="ride_not_found")
    return ride


def request_ride(
    repo: RideRepository,
    jobs: JobQueue,
    rules: FareRules,
    route: RouteModel,
    caller: Caller,
    *,
    pickup: Point,
    dropoff: Point,
    payment: PaymentKind,
    payment_method_id: str | None,
    now: datetime,
    max_route_m: int,
    card_payments_enabled: bool,
    live: LiveState = NO_LIVE,
    payments: PaymentBook | None = None,
    velocity: Velocity | None = None,
    fraud: FraudRules = FraudRules(),
) -> RideState:
    if payment is PaymentKind.CARD and (not card_payments_enabled or payments is None):
        raise Unprocessable("card payments are not available; pay cash", code="card_unavailable")
    if velocity is not None:
        wait = velocity.hit("rides", caller.id, fraud.rides_per_hour, 3600)
        if wait:
            raise RateLimited(
                "too many ride requests this hour", retry_after=wait, code="too_many_rides"
            )
        if payment is PaymentKind.CARD and (
            velocity.count("failed_payments", caller.id, 3600) >= fraud.failed_payments_per_hour
        ):
            raise RateLimited(
                "too many failed card payments this hour; pay cash or wait",
                retry_after=3600,
                code="too_many_failed_payments",
            )
    if payments is not None and (owed := payments.outstanding(caller.id)) > 0:
        raise Conflict(
            f"settle your outstanding balance of {owed} first (update your card)",
            code="outstanding_balance",
        )
    if payment is PaymentKind.CARD and payments is not None and not payments.can_charge(caller.id):
        raise Unprocessable(
            "save a card first (POST /api/v1/payments/setup-intent)", code="no_card"
        )
    if repo.open_ride_of_passenger(caller.id) is not None:
        raise Conflict("you already have an open ride", code="ride_already_open")
    quote = estimate(rules, route, pickup, dropoff, max_route_m)
    if quote.amount > fraud.max_ride_amount:
        raise Unprocessable(
            f"a ride of {quote.amount} is above the cap of {fraud.max_ride_amount}",
            code="amount_over_cap",
        )
    ride = repo.create(
        status=RideStatus.REQUESTED,
        passenger_id=caller.id,
        pickup_lat=pickup.lat,
        pickup_lng=pickup.lng,
        dropoff_lat=dropoff.lat,
        dropoff_lng=dropoff.lng,
        payment=payment,
        payment_method_id=payment_method_id,
        currency=quote.currency,
        estimate_amount=quote.amount,
        estimate_distance_m=quote.distance_m,
        estimate_duration_s=quote.duration_s,
        created_at=now,
        updated_at=now,
        dispatch_deadline=now,  # due at once: the sweep finds it even if the job is lost
    )
    jobs.enqueue("dispatch.advance", ride_id=str(ride.id))
    if payment is PaymentKind.CARD and payments is not None:
        hold = hold_amount(Money(quote.amount, quote.currency))
        payments.hold(ride, hold.amount, payment_method_id)
        jobs.enqueue("payments.authorize_ride", ride_id=str(ride.id))
    live.ride_changed(ride, RideEvent("ride.requested", ride.id, RideStatus.REQUESTED, now))
    return ride


Transition = Callable[[RideState, Caller, datetime, FareRules, int | None], RideEvent]


def _driver_action(
    fn: Callable[[RideState, UUID, datetime], RideEvent],
) -> Transition:
    return lambda ride, caller, now, _rules, _m: fn(ride, caller.id, now)


_DRIVER_ACTIONS: dict[str, Transition] = {
    "arrive": _driver_action(rides.arrive),
    "start": _driver_action(rides.start),
    "complete": lambda ride, caller, now, rules, travelled: rides.complete(
        ride, caller.id, now, rules, travelled_m=travelled
    ),
    "no-show": lambda ride, caller, now, rules, _m: rides.no_show(ride, caller.id, now, rules),
}


def _after(jobs: JobQueue, live: LiveState, ride: RideState, event: RideEvent) -> None:
    live.ride_changed(ride, event)
    if event.status == RideStatus.COMPLETED:
        # the trip's path goes from Redis to the ride row, as an encoded polyline
        jobs.enqueue("rides.store_trip", ride_id=str(event.ride_id))
    if event.status in rides.TERMINAL:
        # the ledger posting is its own idempotent job: fare, fee or nothing
        jobs.enqueue("ledger.post_ride", ride_id=str(event.ride_id))
        if ride.payment == PaymentKind.CARD:
            # capture the fare or fee, or release the hold
            jobs.enqueue("payments.settle_ride", ride_id=str(event.ride_id))


def accept_ride(
    repo: RideRepository,
    jobs: JobQueue,
    caller: Caller,
    ride_id: UUID,
    now: datetime,
    live: LiveState = NO_LIVE,
    offers: OfferBook | None = None,
) -> RideState:
    """Row-locked, so of two drivers accepting at once exactly one wins; the others get 409.

    A driver who loses the race is told the ride is taken (409), not that it does
    not exist: it was offered to them a moment ago. With dispatch (`offers`), a
    driver accepts only a ride they hold an open, unexpired offer for.
    """
    ride = repo.get(ride_id, for_update=True)
    if ride is None:
        raise NotFound("ride not found", code="ride_not_found")
    if ride.status != RideStatus.REQUESTED and ride.driver_id not in (None, caller.id):
        raise Conflict("another driver has taken this ride", code="ride_taken")
    if ride.status in (RideStatus.CANCELLED, RideStatus.EXPIRED):
        raise Conflict(f"the ride is gone ({ride.status})", code="ride_gone")
    if ride.status == RideStatus.REQUESTED and repo.active_ride_of_driver(caller.id) is not None:
        raise Conflict("you are already on a ride", code="driver_busy")
    if offers is not None and ride.status == RideStatus.REQUESTED:
        offers.take(ride, caller.id, now)
    event = rides.accept(ride, caller.id, now)
    repo.save(ride)
    _after(jobs, live, ride, event)
    return ride


def driver_transition(
    repo: RideRepository,
    jobs: JobQueue,
    rules: FareRules,
    caller: Caller,
    ride_id: UUID,
    action: str,
    now: datetime,
    live: LiveState = NO_LIVE,
    paths: TripPaths | None = None,
) -> RideState:
    ride = get_ride(repo, caller, ride_id, lock=True)
    if ride.driver_id != caller.id:
        # a requested ride is visible to drivers, but only its driver moves it on
        raise NotFound("ride not found", code="ride_not_found")
    travelled = None
    if action == "complete" and paths is not None and ride.status == RideStatus.IN_PROGRESS:
        travelled = paths.travelled_m(ride.id)
    event = _DRIVER_ACTIONS[action](ride, caller, now, rules, travelled)
    repo.save(ride)
    _after(jobs, live, ride, event)
    return ride


def cancel_ride(
    repo: RideRepository,
    jobs: JobQueue,
    rules: FareRules,
    caller: Caller,
    ride_id: UUID,
    reason: str | None,
    now: datetime,
    live: LiveState = NO_LIVE,
    offers: OfferBook | None = None,
) -> RideState:
    ride = get_ride(repo, caller, ride_id, lock=True)
    if caller.role is Actor.DRIVER and ride.driver_id != caller.id:
        raise NotFound("ride not found", code="ride_not_found")
    event = rides.cancel(ride, caller.role, now, rules, reason)
    repo.save(ride)
    if offers is not None:
        offers.withdraw_all(ride, "cancelled", now)
    _after(jobs, live, ride, event)
    return ride


def decline_ride(
    repo: RideRepository,
    jobs: JobQueue,
    offers: OfferBook,
    caller: Caller,
    ride_id: UUID,
    now: datetime,
) -> None:
    """The driver says no: dispatch moves on at once."""
    ride = repo.get(ride_id, for_update=True)
    if ride is None:
        raise NotFound("ride not found", code="ride_not_found")
    offers.decline(ride, caller.id, now)
    jobs.enqueue("dispatch.advance", ride_id=str(ride.id))


class Ledger(Protocol):
    def post(self, entry: JournalEntry) -> bool: ...

    def entry_amount(self, key: str) -> int | None: ...


@dataclass(frozen=True, slots=True)
class CashRecord:
    ride_id: UUID
    amount: int
    currency: str
    fare: int
    difference: int  # collected minus fare: positive = overpaid, negative = short


def collect_cash(
    repo: RideRepository, ledger: Ledger, caller: Caller, ride_id: UUID, amount: int
) -> tuple[CashRecord, bool]:
    """Record what the driver took for a completed cash ride, once. Returns (record, new).

    More or less than the fare is recorded as it was, never silently fixed: the rider's
    balance shows the difference. The same amount again is a replay; another is a 409.
    """
    ride = repo.get(ride_id, for_update=True)
    if ride is None or ride.driver_id != caller.id:
        raise NotFound("ride not found", code="ride_not_found")
    if ride.payment != PaymentKind.CASH:
        raise Conflict("this ride is paid by card", code="not_a_cash_ride")
    if ride.status != RideStatus.COMPLETED or ride.fare_amount is None:
        raise IllegalTransition(f"cash is collected after completion; the ride is {ride.status}")
    if amount < 0 or amount > max(10 * ride.fare_amount, 100_000):
        raise Unprocessable("amount is not a plausible cash payment", code="implausible_amount")
    record = CashRecord(ride.id, amount, ride.currency, ride.fare_amount, amount - ride.fare_amount)
    key = f"ride:{ride.id}:cash"
    existing = ledger.entry_amount(key)
    if existing is not None:
        if existing != amount:
            raise Conflict(
                f"cash of {existing} was already recorded for this ride",
                code="cash_already_recorded",
            )
        return record, False
    assert ride.driver_id is not None
    ledger.post(
        cash_collected_entry(
            ride.id, ride.passenger_id, ride.driver_id, Money(amount, ride.currency)
        )
    )
    return record, True
