"""Beat's reconciliation sweeps: what a lost job, a crash, a missed webhook or a silent
phone left half-done is found by its deadline in SQL and repaired by the rules.

- `payments.sweep_stuck`: a payment or refund still pending past its deadline is read
  again from Stripe (Stripe is the truth), or its job is sent again when Stripe never saw it.
- `payments.sweep_holds`: a hold whose ride ended is settled (captured or released); so is
  one close to Stripe's expiry (`capture_before`), before the money is lost.
- `payments.sweep_webhooks`: a stored Stripe event not processed in time is processed again.
- `rides.sweep_stuck`: a ride accepted and never started, or in progress with its driver
  silent for hours, is ended by the rules (`domain.usecases.rides.end_stuck`), both sides told.

Each sweep logs and counts (`ridehail_repairs_total{sweep,action}`) what it repaired, and
only sends idempotent work, so running one twice, or two beats overlapping, is harmless.
Deadlines come from beat's settings (`RIDEHAIL_SWEEP_*`) as the jobs' arguments.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from domain.jobs import Job
from domain.payments import PaymentKind, PaymentStatus
from domain.rides import TERMINAL, RideStatus
from domain.usecases import card_payments as card
from domain.usecases import rides as ride_cases
from infra import jobs
from infra.db import utcnow
from infra.live.positions import Positions
from infra.metrics import REPAIRS
from infra.models import Payment, Ride, WebhookEvent
from infra.redis import get_sync_redis
from infra.settings import get_settings
from infra.unit_of_work import SqlUnitOfWork, make_context
from workers.base import Retryable, transactional_task

log = logging.getLogger("ridehail.sweeps")

BATCH = 100  # per run: a backlog is worked off over a few runs, never in one long transaction


def _repaired(sweep: str, action: str, count: int) -> None:
    if count:
        REPAIRS.labels(sweep, action).inc(count)
        log.warning("sweep %s: %s %d", sweep, action, count)


def _ago(seconds: float | None, default: float) -> datetime:
    return utcnow() - timedelta(seconds=default if seconds is None else seconds)


@transactional_task(Job.SWEEP_STUCK_PAYMENTS, max_retries=0)
def sweep_stuck_payments(session: Session, older_than_s: float | None = None) -> dict[str, int]:
    before = _ago(older_than_s, get_settings().sweep_payment_after_s)
    uow = SqlUnitOfWork(session, stripe_retries=0)
    out = card.repair_stuck(uow, make_context(), before, BATCH)
    for action, count in out.items():
        _repaired("payments", action, count)
    return out


@transactional_task(Job.SWEEP_HOLDS, max_retries=0)
def sweep_holds(
    session: Session, ended_for_s: float | None = None, expiry_margin_s: float | None = None
) -> dict[str, int]:
    """A hold still standing on a ride that ended `ended_for_s` ago (its settle job failed
    or was lost), or whose authorization lapses within `expiry_margin_s`: settled now."""
    s = get_settings()
    ended_before = _ago(ended_for_s, s.sweep_hold_ended_s)
    lapses_by = utcnow() + timedelta(
        seconds=s.sweep_hold_expiry_margin_s if expiry_margin_s is None else expiry_margin_s
    )
    held = session.exec(
        select(Payment.ride_id, Payment.capture_before, Payment.updated_at, Ride.status)
        .join(Ride, col(Ride.id) == col(Payment.ride_id))
        .where(
            Payment.kind == PaymentKind.AUTHORIZATION,
            Payment.status == PaymentStatus.REQUIRES_CAPTURE,
            (col(Payment.updated_at) < ended_before) | (col(Payment.capture_before) < lapses_by),
        )
        .limit(BATCH)
    ).all()
    out = {"settled": 0, "expiring_settled": 0, "expiring_open": 0}
    for ride_id, capture_before, _updated, status in held:
        expiring = capture_before is not None and capture_before < lapses_by
        if status in TERMINAL:
            jobs.enqueue(session, Job.SETTLE_RIDE, ride_id=str(ride_id))
            out["expiring_settled" if expiring else "settled"] += 1
        elif expiring:
            # an open ride this old is the stuck-ride sweep's to end; then this settles it
            log.error(
                "ALERT ride %s is open and its card hold lapses at %s", ride_id, capture_before
            )
            out["expiring_open"] += 1
    for action, count in out.items():
        _repaired("holds", action, count)
    return out


@transactional_task(Job.SWEEP_WEBHOOKS, max_retries=0)
def sweep_webhooks(session: Session, older_than_s: float | None = None) -> int:
    """Stored Stripe events still unprocessed (their job lost or given up): sent again."""
    before = _ago(older_than_s, get_settings().sweep_webhook_after_s)
    waiting = session.exec(
        select(WebhookEvent.id)
        .where(col(WebhookEvent.processed_at).is_(None), col(WebhookEvent.received_at) < before)
        .order_by(col(WebhookEvent.received_at))
        .limit(BATCH * 5)
    ).all()
    for event_id in waiting:
        jobs.enqueue(session, Job.RECONCILE_EVENT, event_id=event_id)
    _repaired("webhooks", "resent", len(waiting))
    return len(waiting)


@transactional_task(Job.SWEEP_STUCK_RIDES, max_retries=0)
def sweep_stuck_rides(
    session: Session, unstarted_s: float | None = None, silent_s: float | None = None
) -> int:
    """Rides past their deadlines get an `rides.end_stuck` job each."""
    s = get_settings()
    unstarted = _ago(unstarted_s, s.sweep_ride_unstarted_s)
    silent = _ago(silent_s, s.sweep_ride_silent_s)
    rows = session.exec(
        select(Ride.id, Ride.status, Ride.driver_id)
        .where(
            (
                col(Ride.status).in_(RideStatus.awaiting_pickup_set())
                & (col(Ride.accepted_at) < unstarted)
            )
            | ((col(Ride.status) == RideStatus.IN_PROGRESS) & (col(Ride.started_at) < silent))
        )
        .limit(BATCH)
    ).all()
    live = Positions(get_sync_redis())
    sent = 0
    for ride_id, status, driver_id in rows:
        last_seen = live.last_seen(str(driver_id)) if driver_id else None
        if status == RideStatus.IN_PROGRESS and last_seen and last_seen >= silent.timestamp():
            continue  # the driver is still pinging: a long trip, not a stuck one
        jobs.enqueue(
            session,
            Job.END_STUCK_RIDE,
            ride_id=str(ride_id),
            unstarted_before=unstarted.isoformat(),
            silent_before=silent.isoformat(),
            last_seen=last_seen,
        )
        sent += 1
    return sent


@transactional_task(Job.END_STUCK_RIDE)
def end_stuck(
    session: Session,
    ride_id: str,
    unstarted_before: str,
    silent_before: str,
    last_seen: float | None = None,
) -> str:
    if session.get(Ride, uuid.UUID(ride_id)) is None:
        raise Retryable(f"ride {ride_id} not visible yet")
    ended = ride_cases.end_stuck(
        SqlUnitOfWork(session),
        make_context(),
        uuid.UUID(ride_id),
        unstarted_before=datetime.fromisoformat(unstarted_before),
        silent_before=datetime.fromisoformat(silent_before),
        last_seen=datetime.fromtimestamp(last_seen, UTC) if last_seen else None,
    )
    if ended is None:
        return "moved on"
    _repaired("rides", f"{ended}", 1)
    return str(ended)
