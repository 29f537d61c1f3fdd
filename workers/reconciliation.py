"""Beat's reconciliation sweeps (`domain.usecases.sweeps`, `card_payments.repair_stuck`):
what a lost job, a crash, a missed webhook or a silent phone left half-done is found by
its deadline and repaired by the rules.

- `payments.sweep_stuck`: a payment or refund still pending past its deadline is read
  again from Stripe (Stripe is the truth), or its job is sent again when Stripe never saw it.
- `payments.sweep_holds`: a hold whose ride ended is settled (captured or released); so is
  one close to Stripe's expiry (`capture_before`), before the money is lost.
- `payments.sweep_webhooks`: a stored Stripe event not processed in time is processed again.
- `rides.sweep_stuck`: a ride accepted and never started, or in progress with its driver
  silent for hours, is ended by the rules (`rides.end_stuck`), both sides told.

Each sweep logs and counts (`ridehail_repairs_total{sweep,action}`) what it repaired.
Deadlines are the jobs' arguments, from beat's settings (`RIDEHAIL_SWEEP_*`); a sweep sent
without them uses the domain's defaults (`sweeps.DEADLINES`, which those settings default to).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from domain.jobs import Job
from domain.usecases import card_payments as card
from domain.usecases import sweeps
from domain.usecases.ports import UnitOfWork
from infra.metrics import REPAIRS
from infra.unit_of_work import make_context
from workers.base import transactional_task

log = logging.getLogger("ridehail.sweeps")
D = sweeps.DEADLINES


def _repaired(sweep: str, out: dict[str, int]) -> None:
    for action, count in out.items():
        if count:
            REPAIRS.labels(sweep, action).inc(count)
            log.warning("sweep %s: %s %d", sweep, action, count)


def _or(value: float | None, default: float) -> timedelta:
    return timedelta(seconds=default if value is None else value)


@transactional_task(Job.SWEEP_STUCK_PAYMENTS, max_retries=0)
def sweep_stuck_payments(uow: UnitOfWork, older_than_s: float | None = None) -> dict[str, int]:
    ctx = make_context()
    before = ctx.now - _or(older_than_s, D.payment_after_s)
    out = card.repair_stuck(uow, ctx, before, sweeps.BATCH)
    _repaired("payments", out)
    return out


@transactional_task(Job.SWEEP_HOLDS, max_retries=0)
def sweep_holds(
    uow: UnitOfWork, ended_for_s: float | None = None, expiry_margin_s: float | None = None
) -> dict[str, int]:
    ctx = make_context()
    out = sweeps.settle_standing_holds(
        uow,
        unchanged_since=ctx.now - _or(ended_for_s, D.hold_ended_s),
        lapsing_by=ctx.now + _or(expiry_margin_s, D.hold_expiry_margin_s),
    )
    _repaired("holds", out)
    return out


@transactional_task(Job.SWEEP_WEBHOOKS, max_retries=0)
def sweep_webhooks(uow: UnitOfWork, older_than_s: float | None = None) -> int:
    ctx = make_context()
    sent = sweeps.reprocess_webhooks(uow, ctx.now - _or(older_than_s, D.webhook_after_s))
    _repaired("webhooks", {"resent": sent})
    return sent


@transactional_task(Job.SWEEP_STUCK_RIDES, max_retries=0)
def sweep_stuck_rides(
    uow: UnitOfWork, unstarted_s: float | None = None, silent_s: float | None = None
) -> int:
    ctx = make_context()
    return sweeps.find_stuck_rides(
        uow,
        unstarted_before=ctx.now - _or(unstarted_s, D.ride_unstarted_s),
        silent_before=ctx.now - _or(silent_s, D.ride_silent_s),
    )


@transactional_task(Job.END_STUCK_RIDE)
def end_stuck(
    uow: UnitOfWork,
    ride_id: str,
    unstarted_before: str,
    silent_before: str,
    last_seen: float | None = None,
) -> str:
    ended = sweeps.end_stuck_ride(
        uow,
        make_context(),
        uuid.UUID(ride_id),
        unstarted_before=datetime.fromisoformat(unstarted_before),
        silent_before=datetime.fromisoformat(silent_before),
        last_seen=last_seen,
    )
    if ended is None:
        return "moved on"
    _repaired("rides", {str(ended): 1})
    return str(ended)
