"""Ledger postings that follow ride events."""

from __future__ import annotations

import logging
import uuid

from sqlmodel import Session

from domain.fares import commission
from domain.jobs import Job
from domain.ledger import ride_fare_entry, ride_fee_entry
from domain.money import Money
from domain.rides import RideStatus
from infra.ledger import SqlLedger
from infra.models import Ride
from infra.settings import get_settings
from workers.base import Retryable, transactional_task

log = logging.getLogger(__name__)


@transactional_task(Job.POST_LEDGER)
def post_ride(session: Session, ride_id: str) -> str:
    """Post the fare of a completed ride, or the fee of a cancelled / no-show one, once."""
    ride = session.get(Ride, uuid.UUID(ride_id))
    if ride is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    rules = get_settings().fare
    ledger = SqlLedger(session)
    if ride.status == RideStatus.COMPLETED:
        assert ride.fare_amount is not None
        assert ride.driver_id is not None
        fare = Money(ride.fare_amount, ride.currency)
        entry = ride_fare_entry(
            ride.id, ride.passenger_id, ride.driver_id, fare, commission(rules, fare)
        )
    elif RideStatus(ride.status).ended_unfinished and ride.fee_amount:
        fee = Money(ride.fee_amount, ride.currency)
        kind = "no_show_fee" if ride.status == RideStatus.NO_SHOW else "cancellation_fee"
        entry = ride_fee_entry(
            ride.id, kind, ride.passenger_id, ride.driver_id, fee, commission(rules, fee)
        )
    else:
        return "nothing to post"
    posted = ledger.post(entry)
    log.info("ledger %s %s", entry.key, "posted" if posted else "already posted")
    return "posted" if posted else "duplicate"
