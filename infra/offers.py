"""Offers in SQL (the record, the race arbiter) and in Redis (what the hot path reads).

SQL decides every race: the ride row is locked, offers are rows with a partial
unique index (one pending offer per driver). Redis mirrors a driver's open offer (for
polling and candidate search) and carries the driver's event stream (offer,
offer_withdrawn, ride_status), through `infra.live.offers.Offers` after commit.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.dispatch import Candidate, OfferStatus
from domain.errors import Conflict, NotFound
from domain.notifications import iso_utc
from domain.rides import RideStatus
from infra.db import after_commit
from infra.live.offers import Offers
from infra.models import Offer, Ride
from infra.redis import get_sync_redis


def offer_payload(ride: Ride, offer: Offer) -> dict[str, Any]:
    return {
        "ride_id": str(ride.id),
        "offer_id": str(offer.id),
        "pickup": {"lat": ride.pickup_lat, "lng": ride.pickup_lng},
        "dropoff": {"lat": ride.dropoff_lat, "lng": ride.dropoff_lng},
        "estimate": {"amount": ride.estimate_amount, "currency": ride.currency},
        "distance_m": offer.distance_m,
        "expires_at": iso_utc(offer.expires_at),  # as the offer push says it
    }


def _live() -> Offers:
    return Offers(get_sync_redis())


def publish_offer(session: Session, ride: Ride, offer: Offer) -> None:
    payload = offer_payload(ride, offer)
    driver = str(offer.driver_id)
    ttl_ms = max(1, int((offer.expires_at.timestamp() - time.time()) * 1000))
    after_commit(session, lambda: _live().offer_made(driver, payload, ttl_ms))


def publish_closed(session: Session, offer: Offer, reason: str) -> None:
    """The driver learns the offer is gone: withdrawn (taken, cancelled, expired)."""
    driver, ride_id = str(offer.driver_id), str(offer.ride_id)
    after_commit(session, lambda: _live().offer_closed(driver, ride_id, reason))


class SqlOffers:
    """The `Dispatching` port: offers in SQL, each one made or closed told to its driver
    (stream, push) once the transaction commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ride(self, ride_id: uuid.UUID) -> Ride | None:
        return self.session.get(Ride, ride_id, with_for_update=True)

    def save(self, ride: Any) -> None:
        self.session.add(ride)

    def pending(self, ride_id: uuid.UUID) -> list[Offer]:
        return list(
            self.session.exec(
                select(Offer)
                .where(Offer.ride_id == ride_id, Offer.status == OfferStatus.PENDING)
                .with_for_update()
            ).all()
        )

    def offered_drivers(self, ride_id: uuid.UUID) -> set[str]:
        rows = self.session.exec(select(Offer.driver_id).where(Offer.ride_id == ride_id)).all()
        return {str(d) for d in rows}

    def of_driver(self, ride_id: uuid.UUID, driver_id: uuid.UUID) -> Offer | None:
        return self.session.exec(
            select(Offer)
            .where(Offer.ride_id == ride_id, Offer.driver_id == driver_id)
            .with_for_update()
        ).first()

    def offer(
        self, ride: Any, candidate: Candidate, wave: int, now: datetime, ttl_s: float
    ) -> Offer | None:
        """Offer `ride` to the candidate, unless they meanwhile hold another offer."""
        offer = Offer(
            ride_id=ride.id,
            driver_id=uuid.UUID(candidate.driver_id),
            wave=wave,
            distance_m=round(candidate.distance_m),
            status=OfferStatus.PENDING,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        try:
            with self.session.begin_nested():
                self.session.add(offer)
                self.session.flush()
        except IntegrityError:
            return None
        publish_offer(self.session, ride, offer)
        return offer

    def close(self, offer: Any, status: str, now: datetime) -> None:
        offer.status = status
        offer.decided_at = now
        self.session.add(offer)
        publish_closed(self.session, offer, str(status))

    def due_rides(self, now: datetime, limit: int = 200) -> list[uuid.UUID]:
        rows = self.session.exec(
            select(Ride.id)
            .where(Ride.status == RideStatus.REQUESTED, col(Ride.dispatch_deadline) <= now)
            .order_by(col(Ride.dispatch_deadline))
            .limit(limit)
        ).all()
        return list(rows)

    def claim_due(self, now: datetime, lease_s: float, limit: int = 200) -> list[uuid.UUID]:
        """The rides due to move on, each claimed for `lease_s`: their deadline is pushed
        that far, so the next sweeps leave them to the job sent now, and send another only
        if it has not run by then (a busy or restarting worker). Without this, a sweep
        every second queued one more job per due ride per second behind a slow worker."""
        due = self.due_rides(now, limit)
        if not due:
            return []
        rows = self.session.execute(
            update(Ride)
            .where(
                col(Ride.id).in_(due),
                col(Ride.status) == RideStatus.REQUESTED,
                col(Ride.dispatch_deadline) <= now,
            )
            .values(dispatch_deadline=now + timedelta(seconds=lease_s))
            .returning(col(Ride.id))
        ).all()
        return [r[0] for r in rows]


class SqlOfferBook:
    """The domain's `OfferBook` over `SqlOffers` (the ride row is already locked)."""

    def __init__(self, session: Session) -> None:
        self.offers = SqlOffers(session)

    def ever_offered(self, ride_id: uuid.UUID, driver_id: uuid.UUID) -> bool:
        return self.offers.of_driver(ride_id, driver_id) is not None

    def open_offer(self, ride_id: uuid.UUID, driver_id: uuid.UUID, now: datetime) -> Offer | None:
        offer = self.offers.session.exec(
            select(Offer).where(
                Offer.ride_id == ride_id,
                Offer.driver_id == driver_id,
                Offer.status == OfferStatus.PENDING,
            )
        ).first()
        return offer if offer is not None and offer.expires_at > now else None

    def take(self, ride: Any, driver_id: uuid.UUID, now: datetime) -> None:
        offer = self.offers.of_driver(ride.id, driver_id)
        if offer is None:
            raise Conflict("you hold no offer for this ride", code="no_offer")
        if offer.status == OfferStatus.PENDING and offer.expires_at <= now:
            self.offers.close(offer, OfferStatus.EXPIRED, now)
            raise Conflict("your offer for this ride has expired", code="offer_expired")
        if offer.status != OfferStatus.PENDING:
            raise Conflict(
                f"your offer for this ride is {offer.status}", code=f"offer_{offer.status}"
            )
        self.offers.close(offer, OfferStatus.ACCEPTED, now)
        for other in self.offers.pending(ride.id):
            if other.id != offer.id:
                self.offers.close(other, OfferStatus.WITHDRAWN, now)

    def decline(self, ride: Any, driver_id: uuid.UUID, now: datetime) -> None:
        offer = self.offers.of_driver(ride.id, driver_id)
        if offer is None:
            raise NotFound("ride not found", code="ride_not_found")
        if offer.status != OfferStatus.PENDING:
            raise Conflict(
                f"your offer for this ride is {offer.status}", code=f"offer_{offer.status}"
            )
        self.offers.close(offer, OfferStatus.DECLINED, now)

    def withdraw_all(self, ride: Any, reason: str, now: datetime) -> None:
        for offer in self.offers.pending(ride.id):
            offer.status = OfferStatus.WITHDRAWN
            offer.decided_at = now
            self.offers.session.add(offer)
            publish_closed(self.offers.session, offer, reason)
