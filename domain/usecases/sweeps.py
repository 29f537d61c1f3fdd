"""Repairs beat runs on a schedule: what a lost job, a crash, a missed webhook or a silent
phone left half-done is found by its deadline and sent on to the rule that finishes it.

Each sweep only sends idempotent work and returns what it found, so running one twice,
or two beats overlapping, is harmless. (Payments and refunds stuck at `pending` are
`card_payments.repair_stuck`'s.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from domain.errors import NotVisibleYet
from domain.jobs import Job
from domain.rides import RideStatus
from domain.usecases import rides as ride_cases
from domain.usecases.context import Context
from domain.usecases.ports import UnitOfWork

log = logging.getLogger("ridehail.sweeps")

BATCH = 100  # per run: a backlog is worked off over a few runs, never in one long transaction


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long a thing may stay half-done before a sweep repairs it, in seconds. Beat
    passes its configured ones (`RIDEHAIL_SWEEP_*`, whose defaults these are) with each
    sweep it sends; a sweep sent without them uses these."""

    payment_after_s: float = 600.0  # a payment or refund still pending
    hold_ended_s: float = 600.0  # a hold still standing after its ride ended
    hold_expiry_margin_s: float = 24 * 3600.0  # settle before Stripe's capture_before
    webhook_after_s: float = 120.0  # a stored Stripe event not processed
    ride_unstarted_s: float = 3600.0  # accepted (or arrived) and never started
    ride_silent_s: float = 3 * 3600.0  # in progress with no ping from the driver


DEADLINES = Deadlines()


def settle_standing_holds(
    uow: UnitOfWork, unchanged_since: datetime, lapsing_by: datetime
) -> dict[str, int]:
    """A card hold still standing on a ride that ended (its settle job failed or was
    lost), or about to lapse at Stripe: its ride is settled (captured or released) now,
    before the money is lost. An open ride whose hold lapses is an alert: ending it is
    the stuck-ride sweep's, and this sweep settles it then."""
    out = {"settled": 0, "expiring_settled": 0, "expiring_open": 0}
    for hold in uow.payments.standing_holds(unchanged_since, lapsing_by, BATCH):
        expiring = hold.capture_before is not None and hold.capture_before < lapsing_by
        if RideStatus(hold.ride_status).terminal:
            uow.jobs.enqueue(Job.SETTLE_RIDE, ride_id=str(hold.ride_id))
            out["expiring_settled" if expiring else "settled"] += 1
        elif expiring:
            log.error(
                "ALERT ride %s is open and its card hold lapses at %s",
                hold.ride_id,
                hold.capture_before,
            )
            out["expiring_open"] += 1
    return out


def reprocess_webhooks(uow: UnitOfWork, received_before: datetime) -> int:
    """Stored Stripe events still unprocessed (their job lost or given up): sent again."""
    waiting = uow.webhooks.unprocessed(received_before, BATCH * 5)
    for event_id in waiting:
        uow.jobs.enqueue(Job.RECONCILE_EVENT, event_id=event_id)
    return len(waiting)


def find_stuck_rides(uow: UnitOfWork, unstarted_before: datetime, silent_before: datetime) -> int:
    """An `end_stuck_ride` job for each ride past its deadlines: accepted and never
    started, or in progress with the driver silent (a driver still pinging is on a long
    trip, not a stuck one)."""
    sent = 0
    for ride in uow.rides.stuck(unstarted_before, silent_before, BATCH):
        seen = uow.drivers.last_seen(ride.driver_id) if ride.driver_id else None
        if ride.status == RideStatus.IN_PROGRESS and seen is not None and seen >= silent_before:
            continue
        uow.jobs.enqueue(
            Job.END_STUCK_RIDE,
            ride_id=str(ride.id),
            unstarted_before=unstarted_before.isoformat(),
            silent_before=silent_before.isoformat(),
            last_seen=seen.timestamp() if seen else None,
        )
        sent += 1
    return sent


def end_stuck_ride(
    uow: UnitOfWork,
    ctx: Context,
    ride_id: UUID,
    *,
    unstarted_before: datetime,
    silent_before: datetime,
    last_seen: float | None,
) -> RideStatus | None:
    """`rides.end_stuck` for a job: the status the ride was ended in, None if it moved on."""
    if uow.rides.get(ride_id) is None:
        raise NotVisibleYet(f"ride {ride_id} not visible yet")
    return ride_cases.end_stuck(
        uow,
        ctx,
        ride_id,
        unstarted_before=unstarted_before,
        silent_before=silent_before,
        last_seen=datetime.fromtimestamp(last_seen, UTC) if last_seen else None,
    )


def resend_stale_jobs(uow: UnitOfWork, older_than_s: float) -> int:
    """Outbox jobs never completed (a crash between commit and send, a broker down, a
    worker killed): sent again. Every job is idempotent."""
    return uow.jobs.resend_stale(older_than_s)


def forget_silent_drivers(uow: UnitOfWork, ctx: Context) -> int:
    """Drivers silent past the stale window leave nearby search."""
    return uow.drivers.forget_silent(ctx.now)
