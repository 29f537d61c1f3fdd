"""What a ride's end posts to the ledger: its fare, or the fee of a cancellation or no-show."""

from __future__ import annotations

from uuid import UUID

from domain.errors import NotVisibleYet
from domain.fares import commission
from domain.ledger import JournalEntry, ride_fare_entry, ride_fee_entry
from domain.money import Money
from domain.rides import RideState, RideStatus
from domain.usecases.context import Context
from domain.usecases.ports import UnitOfWork


def ride_entry(ctx: Context, ride: RideState) -> JournalEntry | None:
    if ride.status == RideStatus.COMPLETED:
        assert ride.fare_amount is not None
        assert ride.driver_id is not None
        fare = Money(ride.fare_amount, ride.currency)
        return ride_fare_entry(
            ride.id, ride.passenger_id, ride.driver_id, fare, commission(ctx.fares, fare)
        )
    if RideStatus(ride.status).ended_unfinished and ride.fee_amount:
        fee = Money(ride.fee_amount, ride.currency)
        kind = "no_show_fee" if ride.status == RideStatus.NO_SHOW else "cancellation_fee"
        return ride_fee_entry(
            ride.id, kind, ride.passenger_id, ride.driver_id, fee, commission(ctx.fares, fee)
        )
    return None


def post_ride(uow: UnitOfWork, ctx: Context, ride_id: UUID) -> str:
    """Post the fare of a completed ride, or the fee of a cancelled / no-show one, once."""
    ride = uow.rides.get(ride_id)
    if ride is None:
        raise NotVisibleYet(f"ride {ride_id} not visible yet")
    entry = ride_entry(ctx, ride)
    if entry is None:
        return "nothing to post"
    return "posted" if uow.ledger.post(entry) else "duplicate"
