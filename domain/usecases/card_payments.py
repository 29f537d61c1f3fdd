"""Card money movement, the workers' use cases: authorize at request, capture or release at
the end, refunds, and reconciling what Stripe's webhooks tell.

Every Stripe call goes through the `CardGateway` port, which keys it with our ids, so a
retry, a redelivery or a worker killed mid-call cannot move money twice; each use case is
safe to run twice (a row already past `pending` is left as it is). What to do with a hold
is `domain.payments`' decision; what the rider is told goes to the notification log and,
for a card to fix, to their own stream (`RiderAlerts`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.errors import NotVisibleYet
from domain.jobs import Job
from domain.ledger import card_received_entry, refund_entry
from domain.money import Money
from domain.notifications import NotificationKind, payment_push
from domain.payments import (
    CardDeclined,
    HoldStep,
    PaymentKind,
    PaymentRefused,
    PaymentStatus,
    RefundStatus,
    amount_due,
    apply_intent,
    captured_by_hold,
    rest_to_charge,
    settle_hold,
)
from domain.usecases import rides as ride_cases
from domain.usecases.context import Context
from domain.usecases.ports import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reconciled:
    result: str
    lag_s: float | None  # from Stripe's event to now, for the lag metric


def authorize_ride(uow: UnitOfWork, ctx: Context, ride_id: UUID) -> str:
    """Hold the estimate plus a margin on the passenger's card (manual capture). A card
    declined cancels the ride like anyone's cancellation; one that needs 3-D Secure keeps
    it (the app confirms on the device)."""
    ride = uow.rides.get(ride_id, for_update=True)
    payment = uow.payments.of_kind(ride_id, PaymentKind.AUTHORIZATION)
    if ride is None or payment is None:
        raise NotVisibleYet(f"ride {ride_id} or its payment not visible yet")
    if payment.status != PaymentStatus.PENDING:
        return str(payment.status)
    _charge(uow, ctx, payment, hold=True)
    if payment.status == PaymentStatus.FAILED:
        ride_cases.cancel_unpaid(uow, ctx, ride_id, f"card authorization {payment.status}")
    log.info("payments: ride %s authorization %s", ride_id, payment.status)
    return str(payment.status)


def settle_ride(uow: UnitOfWork, ctx: Context, ride_id: UUID) -> str:
    """At the ride's end: capture the fare (and charge what exceeds the hold), capture the
    fee of a cancellation or no-show, or release the hold."""
    ride = uow.rides.get(ride_id, for_update=True)
    auth = uow.payments.of_kind(ride_id, PaymentKind.AUTHORIZATION)
    if ride is None or auth is None:
        raise NotVisibleYet(f"ride {ride_id} or its payment not visible yet")
    due = amount_due(ride.status, ride.fare_amount, ride.fee_amount)
    decision = settle_hold(due, auth.status, auth.amount)
    if decision.step is HoldStep.WAIT:
        raise NotVisibleYet("the authorization has not been made yet")
    if decision.step in (HoldStep.CAPTURE, HoldStep.RELEASE):
        assert auth.stripe_payment_intent_id is not None
        try:
            if decision.step is HoldStep.CAPTURE:
                intent = uow.card_gateway.capture(
                    auth.stripe_payment_intent_id, ride_id, decision.amount
                )
            else:
                intent = uow.card_gateway.release(auth.stripe_payment_intent_id, ride_id)
        except (CardDeclined, PaymentRefused) as exc:
            # the hold could not be captured (lapsed, refused): charge it all instead
            auth.status, auth.failure_code = PaymentStatus.FAILED, exc.code
            auth.failure_message = exc.detail[:500]
            uow.payments.save(auth)
            log.warning("payments: ride %s capture failed: %s", ride_id, exc.code)
            _charge_rest(uow, ctx, ride, auth, due)
            return f"due {due}, capture failed"
        apply_intent(auth, intent, ctx.now)
        uow.payments.save(auth)
    captured = captured_by_hold(auth.status, auth.amount_received)
    rest = rest_to_charge(due, captured)
    if rest > 0:
        _charge_rest(uow, ctx, ride, auth, rest)
    return f"due {due}, captured {captured}, rest {rest}"


def refund(uow: UnitOfWork, ctx: Context, refund_id: UUID) -> str:
    """Ask Stripe for a refund an admin granted; a refusal is an alert, not a retry."""
    row = uow.payments.refund(refund_id)
    if row is None:
        raise NotVisibleYet(f"refund {refund_id} not visible yet")
    if row.status != RefundStatus.PENDING:
        return str(row.status)
    payment = uow.payments.get(row.payment_id, for_update=True)
    assert payment is not None
    assert payment.stripe_payment_intent_id is not None
    try:
        result = uow.card_gateway.refund(
            row.id, payment.stripe_payment_intent_id, row.amount, row.reason
        )
    except PaymentRefused as exc:
        row.status, row.updated_at = RefundStatus.FAILED, ctx.now
        uow.payments.save(row)
        log.error("ALERT refund %s refused by Stripe: %s", row.id, exc.detail)
        return "failed"
    row.stripe_refund_id = result.id
    row.status = str(result.status)
    row.updated_at = ctx.now
    uow.payments.save(row)
    return str(row.status)


def reconcile_event(uow: UnitOfWork, ctx: Context, event_id: str) -> Reconciled:
    """Bring our payment in line with Stripe's current state of the event's object.

    The event only says *which* object changed; its state is read fresh from Stripe, so a
    duplicate, a late or an out-of-order event all end in the same, current state."""
    event = uow.webhooks.get(event_id)
    if event is None:
        raise NotVisibleYet(f"event {event_id} not visible yet")
    if event.processed_at is not None:
        return Reconciled(event.result or "done", None)
    obj = (event.payload.get("data") or {}).get("object") or {}
    if obj.get("object") == "refund":
        event.result = reconcile_refund(uow, ctx, str(obj.get("id")))
    elif obj.get("object") != "payment_intent":
        event.result = "ignored"
    else:
        payment = uow.payments.by_intent(str(obj.get("id")))
        if payment is None:
            ours = (obj.get("metadata") or {}).get("payment_id")
            if ours:  # our own transaction has not committed yet: come back
                raise NotVisibleYet(f"payment {ours} of {obj.get('id')} not visible yet")
            event.result = "not ours"
        else:
            apply_intent(payment, uow.card_gateway.intent(obj["id"]), ctx.now)
            uow.payments.save(payment)
            event.result = f"payment {payment.status}"
    event.processed_at = ctx.now
    uow.webhooks.save(event)
    created = event.payload.get("created")
    lag = max(0.0, ctx.now.timestamp() - created) if isinstance(created, int | float) else None
    return Reconciled(event.result or "", lag)


def reconcile_refund(uow: UnitOfWork, ctx: Context, stripe_refund_id: str) -> str:
    """A refund's state as Stripe has it now (a refund can fail after it was accepted)."""
    row = uow.payments.refund_by_stripe_id(stripe_refund_id)
    if row is None:
        return "not ours"
    status = uow.card_gateway.refund_state(stripe_refund_id)
    if status == row.status:
        return f"refund {status}"
    if row.status == RefundStatus.SUCCEEDED and status in FAILED_REFUNDS:
        log.error("ALERT refund %s %s after succeeding", row.id, status)
    row.status, row.updated_at = status, ctx.now
    uow.payments.save(row)
    return f"refund {status}"


def take_intent(uow: UnitOfWork, ctx: Context, payment: Any, intent: Any) -> None:
    """Stripe's state of the payment's intent onto our row, and what it took booked and
    told (the device confirmed it, say)."""
    apply_intent(payment, intent, ctx.now)
    uow.payments.save(payment)


def repair_stuck(uow: UnitOfWork, ctx: Context, before: datetime, batch: int) -> dict[str, int]:
    """Payments and refunds left `pending` since `before` (a worker died, Stripe was out
    of reach): one Stripe knows of is read again from Stripe (the truth); one it never
    saw has its job sent again (its key keeps it once)."""
    out = {"reread": 0, "resent": 0, "refunds_reread": 0, "refunds_resent": 0}
    for payment in uow.payments.stuck(before, batch):
        if payment.stripe_payment_intent_id:
            apply_intent(
                payment, uow.card_gateway.intent(payment.stripe_payment_intent_id), ctx.now
            )
            uow.payments.save(payment)
            out["reread"] += 1
        else:
            job = (
                Job.AUTHORIZE_RIDE if payment.kind == PaymentKind.AUTHORIZATION else Job.SETTLE_RIDE
            )
            uow.jobs.enqueue(job, ride_id=str(payment.ride_id))
            payment.updated_at = ctx.now  # the next sweep waits a full deadline again
            uow.payments.save(payment)
            out["resent"] += 1
    for row in uow.payments.stuck_refunds(before, batch):
        if row.stripe_refund_id:
            reconcile_refund(uow, ctx, row.stripe_refund_id)
            out["refunds_reread"] += 1
        else:
            uow.jobs.enqueue(Job.REFUND, refund_id=str(row.id))
            out["refunds_resent"] += 1
    return out


# --- what follows a payment's or a refund's change, collected at the commit -------------
FAILED_REFUNDS = (RefundStatus.FAILED, RefundStatus.CANCELED)
_RIDER_MUST_ACT = {
    PaymentStatus.FAILED: NotificationKind.PAYMENT_FAILED,
    PaymentStatus.REQUIRES_ACTION: NotificationKind.PAYMENT_ACTION_NEEDED,
}


def collect(uow: UnitOfWork) -> None:
    """What every payment and refund changed in this unit of work entails, called by the
    unit of work just before it commits, so no path that changes one can skip it: money
    taken is posted and told; a payment that failed or needs the device tells the rider;
    a refund made is booked, told and counted on its payment; one that failed after it
    succeeded is booked back."""
    for payment, was in uow.payments.changed():
        if payment.status != was["status"] and payment.status in _RIDER_MUST_ACT:
            _tell_rider_to_fix(uow, payment, _RIDER_MUST_ACT[PaymentStatus(payment.status)])
        if payment.amount_received > was["amount_received"]:
            _record_received(uow, payment)
    for row, was in uow.payments.changed_refunds():
        payment = uow.payments.get(row.payment_id, for_update=True)
        assert payment is not None
        if row.status == RefundStatus.SUCCEEDED:
            _refunded(uow, row, payment)
        elif was["status"] == RefundStatus.SUCCEEDED and row.status in FAILED_REFUNDS:
            # the money did not go back after all: undo what we booked
            payment.amount_refunded -= row.amount
            uow.payments.save(payment)
            uow.ledger.post(
                refund_entry(
                    row.id, payment.ride_id, Money(row.amount, row.currency), reversed=True
                )
            )


# --- the steps the use cases share ------------------------------------------------------
def _charge(uow: UnitOfWork, ctx: Context, payment: Any, *, hold: bool) -> None:
    """Ask Stripe for `payment` on the rider's saved card, off-session; record the answer."""
    customer = uow.payments.customer_of(payment.passenger_id)
    gateway = uow.card_gateway
    pm = payment.payment_method_id or (gateway.charging_card(customer) if customer else None)
    if not customer or not pm:
        payment.status, payment.failure_code = PaymentStatus.FAILED, "no_payment_method"
    else:
        payment.payment_method_id = pm
        try:
            intent = gateway.charge_off_session(
                payment_id=payment.id,
                ride_id=payment.ride_id,
                amount=payment.amount,
                currency=payment.currency,
                customer=customer,
                payment_method=pm,
                hold=hold,
                purpose="authorize" if hold else "extra",
            )
            apply_intent(payment, intent, ctx.now)
        except (CardDeclined, PaymentRefused) as exc:
            # a card's answer, or e.g. the card was removed meanwhile: the rider must act
            _declined(payment, exc, ctx.now)
    uow.payments.save(payment)


def _declined(payment: Any, exc: CardDeclined | PaymentRefused, now: datetime) -> None:
    if isinstance(exc, CardDeclined) and exc.intent_id:
        payment.stripe_payment_intent_id = exc.intent_id
    needs_device = isinstance(exc, CardDeclined) and exc.needs_authentication
    payment.status = PaymentStatus.REQUIRES_ACTION if needs_device else PaymentStatus.FAILED
    decline = exc.decline_code if isinstance(exc, CardDeclined) else None
    payment.failure_code = (decline or exc.code)[:64]
    payment.failure_message = exc.detail[:500]
    payment.updated_at = now


def _charge_rest(uow: UnitOfWork, ctx: Context, ride: Any, auth: Any, amount: int) -> None:
    """What the hold did not cover, charged off-session; a failure is an outstanding
    balance that blocks the passenger's next request."""
    extra = uow.payments.of_kind(ride.id, PaymentKind.EXTRA_CHARGE)
    if extra is None:
        extra = uow.payments.add(ride, PaymentKind.EXTRA_CHARGE, amount, auth.payment_method_id)
    if extra.status != PaymentStatus.PENDING:
        return
    _charge(uow, ctx, extra, hold=False)


def _tell_rider_to_fix(uow: UnitOfWork, payment: Any, kind: NotificationKind) -> None:
    """The rider must fix their card: an event on their own stream once committed (the
    fraud limits count it too), a push, and a log line ops can alert on."""
    log.warning("payments: %s for ride %s (%s)", kind, payment.ride_id, payment.failure_code)
    owed = payment.amount - payment.amount_received
    uow.rider_alerts.payment_problem(
        payment.passenger_id,
        str(kind),
        {
            "ride_id": str(payment.ride_id),
            "payment_id": str(payment.id),
            "amount": owed,
            "currency": payment.currency,
            "code": payment.failure_code,
        },
    )
    _push_payment(uow, payment, kind, owed)


def _record_received(uow: UnitOfWork, payment: Any) -> None:
    """What Stripe took on this payment, posted to the ledger (once: the entry's key) and
    told to the rider (once: the notification's key)."""
    if payment.amount_received > 0:
        uow.ledger.post(
            card_received_entry(
                payment.id,
                payment.ride_id,
                payment.passenger_id,
                Money(payment.amount_received, payment.currency),
            )
        )
        _push_payment(uow, payment, NotificationKind.PAYMENT_SUCCEEDED, payment.amount_received)


def _push_payment(uow: UnitOfWork, payment: Any, kind: NotificationKind, amount: int) -> None:
    uow.pushes.log(
        [
            payment_push(
                kind,
                payment.passenger_id,
                payment.ride_id,
                f"payment:{payment.id}",
                amount,
                payment.currency,
            )
        ]
    )


def _refunded(uow: UnitOfWork, row: Any, payment: Any) -> None:
    """A refund Stripe made: on the payment, in the ledger, and told to the rider."""
    payment.amount_refunded += row.amount
    payment.updated_at = row.updated_at or payment.updated_at
    uow.payments.save(payment)
    uow.ledger.post(refund_entry(row.id, payment.ride_id, Money(row.amount, row.currency)))
    uow.pushes.log(
        [
            payment_push(
                NotificationKind.REFUNDED,
                payment.passenger_id,
                payment.ride_id,
                f"refund:{row.id}",
                row.amount,
                row.currency,
            )
        ]
    )
