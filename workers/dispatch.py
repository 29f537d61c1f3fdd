"""The dispatcher: offers requested rides to nearby idle drivers, wave by wave.

`dispatch.advance(ride_id)` is idempotent: under the ride's row lock it looks at
the ride's open offers and either waits (a wave is still open), starts the next
wave, or expires the ride. It runs when a ride is requested, when an offer is
declined, and from the beat sweep for every ride whose deadline has passed
(offer expiry, an empty wave's retry): deadlines live in SQL, never in Celery
countdowns.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlmodel import Session

from domain.dispatch import DispatchRules, OfferStatus, pick
from domain.jobs import Job
from domain.rides import RideStatus
from domain.usecases import rides as ride_cases
from infra import jobs
from infra.db import utcnow
from infra.live.offers import Offers
from infra.metrics import DISPATCH_FIRST_OFFER
from infra.models import Ride
from infra.offers import SqlOffers
from infra.redis import get_sync_redis
from infra.settings import get_settings
from infra.unit_of_work import SqlUnitOfWork, make_context
from workers.base import Retryable, transactional_task

log = logging.getLogger(__name__)


@transactional_task(Job.DISPATCH)
def advance(session: Session, ride_id: str) -> str:
    settings = get_settings()
    rules: DispatchRules = settings.dispatch
    ride = session.get(Ride, uuid.UUID(ride_id), with_for_update=True)
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    offers = SqlOffers(session)
    now = utcnow()
    pending = offers.pending_for_ride(ride.id)
    if ride.status != RideStatus.REQUESTED:
        for offer in pending:
            offers.close(offer, OfferStatus.WITHDRAWN, now)
        ride.dispatch_deadline = None
        session.add(ride)
        return f"ride is {ride.status}"
    open_offers = []
    for offer in pending:
        if offer.expires_at <= now:
            offers.close(offer, OfferStatus.EXPIRED, now)
        else:
            open_offers.append(offer)
    if open_offers:
        # the wave is still open: come back when its last offer expires
        ride.dispatch_deadline = max(o.expires_at for o in open_offers)
        session.add(ride)
        return "waiting"
    wave = ride.dispatch_wave + 1
    if wave > rules.max_waves:
        ride.dispatch_deadline = None
        ride_cases.expire(SqlUnitOfWork(session), make_context(settings, now), ride.id)
        log.info("dispatch: ride %s expired after %d waves", ride.id, ride.dispatch_wave)
        return "expired"
    radius = rules.radius(wave)
    found = Offers(get_sync_redis()).candidates_near(
        ride.pickup_lat, ride.pickup_lng, radius, settings.driver_stale_s
    )
    offered_before = offers.offered_drivers(ride.id)
    chosen = pick(found, rules, offered_before)
    made = [o for c in chosen if (o := offers.create(ride, c, wave, now, rules.offer_ttl_s))]
    if made and not offered_before:
        DISPATCH_FIRST_OFFER.observe(max(0.0, (now - ride.created_at).total_seconds()))
    ride.dispatch_wave = wave
    ride.dispatch_deadline = now + timedelta(
        seconds=rules.offer_ttl_s if made else rules.empty_wave_retry_s
    )
    session.add(ride)
    log.info("dispatch: ride %s wave %d (%.0f m): %d offer(s)", ride.id, wave, radius, len(made))
    return f"wave {wave}: {len(made)} offers"


SWEEP_LEASE_S = 10.0  # a ride's move sent by the sweep is sent again after this at most


@transactional_task(Job.SWEEP_DISPATCH, max_retries=0)
def sweep(session: Session) -> int:
    """Beat job: move on every ride whose wave deadline has passed."""
    due = SqlOffers(session).claim_due_rides(utcnow(), lease_s=SWEEP_LEASE_S)
    for ride_id in due:
        jobs.enqueue(session, Job.DISPATCH, ride_id=str(ride_id))
    return len(due)
