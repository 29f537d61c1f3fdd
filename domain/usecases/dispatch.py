"""The dispatcher: a requested ride offered to nearby idle drivers, wave by wave.

`advance` is idempotent: under the ride's row lock it looks at the ride's open offers and
either waits (a wave is still open), starts the next wave, or expires the ride. It runs
when a ride is requested, when an offer is declined, and for every ride whose deadline
has passed (`claim_due`, from beat's sweep): deadlines live with the ride, never in
timers of a process that may die.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from domain.dispatch import OfferStatus, pick
from domain.errors import NotVisibleYet
from domain.jobs import Job
from domain.notifications import iso_utc, offer_push
from domain.rides import RideStatus
from domain.usecases import rides as ride_cases
from domain.usecases.context import Context
from domain.usecases.ports import DispatchRide, PendingOffer, UnitOfWork


@dataclass(frozen=True, slots=True)
class Advanced:
    outcome: str
    first_offer_after_s: float | None = None  # from the request to its first offers


def advance(uow: UnitOfWork, ctx: Context, ride_id: UUID) -> Advanced:
    rules, book = ctx.dispatch, uow.dispatching
    ride = book.ride(ride_id)
    if ride is None:
        raise NotVisibleYet(f"ride {ride_id} not visible yet")
    now = ctx.now
    pending = book.pending(ride.id)
    if ride.status != RideStatus.REQUESTED:
        for offer in pending:
            book.close(offer, OfferStatus.WITHDRAWN, now)
        ride.dispatch_deadline = None
        book.save(ride)
        return Advanced(f"ride is {ride.status}")
    open_offers = []
    for offer in pending:
        if offer.expires_at <= now:
            book.close(offer, OfferStatus.EXPIRED, now)
        else:
            open_offers.append(offer)
    if open_offers:  # the wave is still open: come back when its last offer expires
        ride.dispatch_deadline = max(o.expires_at for o in open_offers)
        book.save(ride)
        return Advanced("waiting")
    wave = ride.dispatch_wave + 1
    if wave > rules.max_waves:
        ride.dispatch_deadline = None
        ride_cases.expire(uow, ctx, ride.id)
        return Advanced("expired")
    found = uow.drivers.near(ride.pickup_lat, ride.pickup_lng, rules.radius(wave))
    offered_before = book.offered_drivers(ride.id)
    chosen = pick(found, rules, offered_before)
    made = [o for c in chosen if (o := make_offer(uow, ride, c, wave, now, rules.offer_ttl_s))]
    first_after = None
    if made and not offered_before:
        first_after = max(0.0, (now - ride.created_at).total_seconds())
    ride.dispatch_wave = wave
    ride.dispatch_deadline = now + timedelta(
        seconds=rules.offer_ttl_s if made else rules.empty_wave_retry_s
    )
    book.save(ride)
    return Advanced(f"wave {wave}: {len(made)} offers", first_after)


def make_offer(
    uow: UnitOfWork, ride: DispatchRide, candidate: Any, wave: int, now: datetime, ttl_s: float
) -> PendingOffer | None:
    """One offer of the ride to the candidate, and its push (unless they meanwhile hold
    another offer: then none)."""
    offer = uow.dispatching.offer(ride, candidate, wave, now, ttl_s)
    if offer is not None:
        expires = iso_utc(offer.expires_at)
        uow.pushes.log([offer_push(offer.driver_id, ride.id, offer.id, expires, round(ttl_s))])
    return offer


def move_due_rides(uow: UnitOfWork, ctx: Context, lease_s: float) -> int:
    """Send a move for every ride whose wave deadline has passed, once per `lease_s`."""
    due = uow.dispatching.claim_due(ctx.now, lease_s)
    for ride_id in due:
        uow.jobs.enqueue(Job.DISPATCH, ride_id=str(ride_id))
    return len(due)
