"""Ride use cases: request, read, accept, decline, the driver's steps, cancel, expire.

Every change goes through the `Ride` aggregate and `follow_ups.record`, whoever asks: a
passenger or driver over HTTP, dispatch expiring a ride, or the payments worker
cancelling a ride whose card was declined.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.access import SYSTEM, Access, Actor, Caller, require, ride_access
from domain.errors import Conflict, NotFound, RateLimited, Unprocessable
from domain.fares import compute_fare, hold_amount
from domain.geo import Point
from domain.jobs import Job
from domain.money import Money
from domain.rides import OPEN, Ride, RidePayment, RideState, RideStatus, check_route
from domain.usecases.context import Context
from domain.usecases.ports import RideQuery, UnitOfWork


def _not_found() -> NotFound:
    return NotFound("ride not found", code="ride_not_found")


@dataclass(frozen=True, slots=True)
class Estimate:
    amount: int
    currency: str
    distance_m: int
    duration_s: int


def estimate(ctx: Context, pickup: Point, dropoff: Point) -> Estimate:
    distance = ctx.route.road_distance_m(pickup, dropoff)
    check_route(distance, ctx.max_route_m)
    duration = ctx.route.duration_s(distance)
    fare = compute_fare(ctx.fares, distance, duration).total
    return Estimate(fare.amount, fare.currency, distance, duration)


@dataclass(frozen=True, slots=True)
class RideRequest:
    pickup: Point
    dropoff: Point
    payment: RidePayment
    payment_method_id: str | None = None


def _check_fraud(uow: UnitOfWork, ctx: Context, caller: Caller, req: RideRequest) -> None:
    wait = uow.velocity.hit("rides", caller.id, ctx.fraud.rides_per_hour, 3600)
    if wait:
        raise RateLimited(
            "too many ride requests this hour", retry_after=wait, code="too_many_rides"
        )
    if req.payment is RidePayment.CARD and (
        uow.velocity.count("failed_payments", caller.id, 3600) >= ctx.fraud.failed_payments_per_hour
    ):
        raise RateLimited(
            "too many failed card payments this hour; pay cash or wait",
            retry_after=3600,
            code="too_many_failed_payments",
        )


def request_ride(uow: UnitOfWork, ctx: Context, caller: Caller, req: RideRequest) -> RideState:
    _check_fraud(uow, ctx, caller, req)
    if (owed := uow.payments.outstanding(caller.id)) > 0:
        raise Conflict(
            f"settle your outstanding balance of {owed} first (update your card)",
            code="outstanding_balance",
        )
    if req.payment is RidePayment.CARD and not uow.payments.can_charge(caller.id):
        raise Unprocessable(
            "save a card first (POST /api/v1/payments/setup-intent)", code="no_card"
        )
    if uow.rides.open_ride_of_passenger(caller.id) is not None:
        raise Conflict("you already have an open ride", code="ride_already_open")
    quote = estimate(ctx, req.pickup, req.dropoff)
    if quote.amount > ctx.fraud.max_ride_amount:
        raise Unprocessable(
            f"a ride of {quote.amount} is above the cap of {ctx.fraud.max_ride_amount}",
            code="amount_over_cap",
        )
    ride = uow.rides.add(
        status=RideStatus.REQUESTED,
        passenger_id=caller.id,
        pickup_lat=req.pickup.lat,
        pickup_lng=req.pickup.lng,
        dropoff_lat=req.dropoff.lat,
        dropoff_lng=req.dropoff.lng,
        payment=req.payment,
        payment_method_id=req.payment_method_id,
        currency=quote.currency,
        estimate_amount=quote.amount,
        estimate_distance_m=quote.distance_m,
        estimate_duration_s=quote.duration_s,
        created_at=ctx.now,
        updated_at=ctx.now,
        dispatch_deadline=ctx.now,  # due at once: the sweep finds it even if the job is lost
    )
    if req.payment is RidePayment.CARD:
        hold = hold_amount(Money(quote.amount, quote.currency))
        uow.payments.hold(ride.state, hold.amount, req.payment_method_id)
    ride.requested(ctx.now)
    return ride.state


@dataclass(frozen=True, slots=True)
class RideView:
    """A ride as the caller may see it: all of it, or (an offer's holder) the offer."""

    ride: RideState
    access: Access
    offer_expires_at: datetime | None = None


def view_ride(uow: UnitOfWork, ctx: Context, caller: Caller, ride_id: UUID) -> RideView:
    ride = uow.rides.get(ride_id)
    if ride is None:
        raise _not_found()
    offer = None
    if caller.role is Actor.DRIVER and ride.driver_id != caller.id:
        offer = uow.offers.open_offer(ride.id, caller.id, ctx.now)
    access = ride_access(
        caller, ride.passenger_id, ride.driver_id, holds_open_offer=offer is not None
    )
    require(access, Access.OFFER)
    return RideView(ride, access, offer.expires_at if offer is not None else None)


def list_rides(
    uow: UnitOfWork,
    caller: Caller,
    *,
    status: RideStatus | None,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[RideState]:
    """My rides, newest first; admins see every ride."""
    return uow.rides.page(
        RideQuery(
            passenger_id=caller.id if caller.role is Actor.PASSENGER else None,
            driver_id=caller.id if caller.role is Actor.DRIVER else None,
            status=status,
            before=before,
            limit=limit,
        )
    )


def _locked(uow: UnitOfWork, ride_id: UUID) -> Ride:
    ride = uow.rides.lock(ride_id)
    if ride is None:
        raise _not_found()
    return ride


def _locked_as_participant(uow: UnitOfWork, caller: Caller, ride_id: UUID) -> Ride:
    """The ride, row-locked, if the caller is its passenger, its driver or an admin."""
    ride = _locked(uow, ride_id)
    require(ride_access(caller, ride.state.passenger_id, ride.state.driver_id), Access.PARTICIPANT)
    return ride


def accept(uow: UnitOfWork, ctx: Context, caller: Caller, ride_id: UUID) -> RideState:
    """Row-locked, so of two drivers accepting at once exactly one wins; the others get 409.

    A driver who loses the race is told the ride is taken (409), not that it does not
    exist: it was offered to them a moment ago. A driver it was never offered to (nor
    theirs) is told nothing about it: 404. A driver accepts only a ride they hold an
    open, unexpired offer for.
    """
    ride = _locked(uow, ride_id)
    state = ride.state
    if state.driver_id != caller.id and not uow.offers.ever_offered(state.id, caller.id):
        raise _not_found()
    if state.status != RideStatus.REQUESTED and state.driver_id not in (None, caller.id):
        raise Conflict("another driver has taken this ride", code="ride_taken")
    if RideStatus(state.status).gone:
        raise Conflict(f"the ride is gone ({state.status})", code="ride_gone")
    if state.status == RideStatus.REQUESTED:
        if uow.rides.active_ride_of_driver(caller.id) is not None:
            raise Conflict("you are already on a ride", code="driver_busy")
        uow.offers.take(state, caller.id, ctx.now)
    ride.accept(caller.id, ctx.now)
    uow.rides.save(state)
    return state


def decline(uow: UnitOfWork, ctx: Context, caller: Caller, ride_id: UUID) -> None:
    """The driver says no to their offer: dispatch moves on at once."""
    ride = _locked(uow, ride_id)
    state = ride.state
    uow.offers.decline(state, caller.id, ctx.now)
    uow.jobs.enqueue(Job.DISPATCH, ride_id=str(state.id))


class DriverStep(StrEnum):
    ARRIVE = "arrive"
    START = "start"
    COMPLETE = "complete"
    NO_SHOW = "no-show"


def driver_step(
    uow: UnitOfWork, ctx: Context, caller: Caller, ride_id: UUID, step: DriverStep
) -> RideState:
    # the route is the driver's: participant access here means the ride's own driver
    ride = _locked_as_participant(uow, caller, ride_id)
    state = ride.state
    if step is DriverStep.ARRIVE:
        ride.arrive(caller.id, ctx.now)
    elif step is DriverStep.START:
        ride.start(caller.id, ctx.now)
    elif step is DriverStep.COMPLETE:
        travelled = (
            uow.paths.travelled_m(state.id, since=state.started_at)
            if state.status == RideStatus.IN_PROGRESS
            else None
        )
        ride.complete(caller.id, ctx.now, ctx.fares, travelled_m=travelled)
    else:
        ride.no_show(caller.id, ctx.now, ctx.fares)
    uow.rides.save(state)
    return state


def cancel(
    uow: UnitOfWork, ctx: Context, caller: Caller, ride_id: UUID, reason: str | None
) -> RideState:
    """By the passenger, the assigned driver, an admin, or the system (`SYSTEM`)."""
    ride = _locked_as_participant(uow, caller, ride_id)
    state = ride.state
    ride.cancel(caller.role, ctx.now, ctx.fares, reason)
    uow.offers.withdraw_all(state, "cancelled", ctx.now)
    uow.rides.save(state)
    return state


def cancel_unpaid(uow: UnitOfWork, ctx: Context, ride_id: UUID, reason: str) -> bool:
    """The system ends an open ride whose card hold was declined. False if it had ended."""
    ride = _locked(uow, ride_id)
    state = ride.state
    if state.status not in OPEN:
        return False
    cancel(uow, ctx, SYSTEM, ride_id, reason)
    return True


def expire(uow: UnitOfWork, ctx: Context, ride_id: UUID) -> RideState:
    """Dispatch found no driver in time."""
    ride = _locked(uow, ride_id)
    state = ride.state
    ride.expire(ctx.now)
    uow.offers.withdraw_all(state, "expired", ctx.now)
    uow.rides.save(state)
    return state


def end_stuck(
    uow: UnitOfWork,
    ctx: Context,
    ride_id: UUID,
    *,
    unstarted_before: datetime,
    silent_before: datetime,
    last_seen: datetime | None,
) -> RideStatus | None:
    """The system ends a ride stuck past its deadlines, by the rules, both sides told:
    accepted (or arrived) before `unstarted_before` and never started is cancelled without
    a fee; in progress with no sign of the driver (`last_seen`, else the start) since
    `silent_before` is completed up to that last sign. The checks are made again under the
    ride's lock, so a ride that moved meanwhile is left alone (None)."""
    ride = _locked(uow, ride_id)
    state = ride.state
    if RideStatus(state.status).awaiting_pickup:
        if state.accepted_at is None or state.accepted_at >= unstarted_before:
            return None
        ride.cancel(SYSTEM.role, ctx.now, ctx.fares, "the trip was never started")
        uow.offers.withdraw_all(state, "cancelled", ctx.now)
    elif state.status == RideStatus.IN_PROGRESS:
        seen = max(d for d in (last_seen, state.started_at) if d is not None)
        if seen >= silent_before:
            return None
        ride.close_silent(
            ctx.now,
            seen,
            ctx.fares,
            travelled_m=uow.paths.travelled_m(state.id, since=state.started_at),
        )
    else:
        return None
    uow.rides.save(state)
    return RideStatus(state.status)
