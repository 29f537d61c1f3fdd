"""Card money movement, always by workers: authorize at request, capture or release at the
end, refunds, and reconciling what Stripe's webhooks tell. Every Stripe call goes through
the gateway, which keys it with domain ids, so a retry, a redelivery or a worker killed
mid-call cannot move money twice. What to do with a hold is `domain.payments`' decision.
"""

from __future__ import annotations

import logging
import uuid

from sqlmodel import Session, select

from domain.jobs import Job
from domain.ledger import refund_entry
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
    captured_by_hold,
    rest_to_charge,
    settle_hold,
)
from domain.usecases import rides as ride_cases
from infra.db import after_commit, utcnow
from infra.live.keys import user_stream
from infra.live.streams import Streams
from infra.metrics import WEBHOOK_LAG
from infra.models import Payment, Refund, Ride, User, WebhookEvent
from infra.notifications import log_pushes
from infra.payments import apply_intent, new_payment, payment_of, record_received, tell_rider
from infra.ratelimit import RedisVelocity
from infra.redis import get_sync_redis
from infra.repositories import SqlLedger
from infra.stripe_gateway import StripeGateway
from infra.unit_of_work import SqlUnitOfWork, make_context
from workers.base import Retryable, transactional_task

log = logging.getLogger(__name__)


def _gateway() -> StripeGateway:
    return StripeGateway(retries=0)  # Celery retries with backoff; the key makes it safe


def _declined(payment: Payment, exc: CardDeclined | PaymentRefused) -> None:
    if isinstance(exc, CardDeclined) and exc.intent_id:
        payment.stripe_payment_intent_id = exc.intent_id
    needs_device = isinstance(exc, CardDeclined) and exc.needs_authentication
    payment.status = PaymentStatus.REQUIRES_ACTION if needs_device else PaymentStatus.FAILED
    decline = exc.decline_code if isinstance(exc, CardDeclined) else None
    payment.failure_code = (decline or exc.code)[:64]
    payment.failure_message = exc.detail[:500]
    payment.updated_at = utcnow()


def _tell_rider(session: Session, payment: Payment, kind: str) -> None:
    """The rider must fix their card: once this transaction has committed, an event on
    their own stream (the push notifications turn it into a push), a count for the fraud
    limits, and a log line ops can alert on."""
    log.warning("payments: %s for ride %s (%s)", kind, payment.ride_id, payment.failure_code)
    passenger = payment.passenger_id
    event = {
        "ride_id": str(payment.ride_id),
        "payment_id": str(payment.id),
        "amount": payment.amount - payment.amount_received,
        "currency": payment.currency,
        "code": payment.failure_code,
    }

    def tell() -> None:
        RedisVelocity(get_sync_redis()).hit("failed_payments", passenger, 10**6, 3600)
        Streams(get_sync_redis()).emit(user_stream(passenger), kind, event)

    after_commit(session, tell)
    tell_rider(session, payment, NotificationKind(kind), payment.amount - payment.amount_received)


def _charge(session: Session, payment: Payment, *, hold: bool) -> None:
    """Ask Stripe for `payment` on the rider's saved card, off-session; record the answer."""
    user = session.get(User, payment.passenger_id)
    customer = user.stripe_customer_id if user else None
    gateway = _gateway()
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
            apply_intent(payment, intent)
        except (CardDeclined, PaymentRefused) as exc:
            # a card's answer, or e.g. the card was removed meanwhile: the rider must act
            _declined(payment, exc)
    session.add(payment)
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.REQUIRES_ACTION):
        _tell_rider(
            session,
            payment,
            "payment_failed"
            if payment.status == PaymentStatus.FAILED
            else "payment_requires_action",
        )
    record_received(session, payment)


@transactional_task(Job.AUTHORIZE_RIDE)
def authorize_ride(session: Session, ride_id: str) -> str:
    """Hold the estimate plus a margin on the passenger's card (manual capture)."""
    rid = uuid.UUID(ride_id)
    ride = session.get(Ride, rid, with_for_update=True)
    payment = payment_of(session, rid, PaymentKind.AUTHORIZATION)
    if ride is None or payment is None:
        raise Retryable(f"ride {ride_id} or its payment not visible yet")
    if payment.status != PaymentStatus.PENDING:
        return payment.status
    _charge(session, payment, hold=True)
    if payment.status == PaymentStatus.FAILED:
        # a declined card: no hold, no ride. (A card that needs 3-D Secure keeps its ride:
        # the app confirms on the device.) The same cancellation as anyone's, follow-ups and all.
        ride_cases.cancel_unpaid(
            SqlUnitOfWork(session), make_context(), rid, f"card authorization {payment.status}"
        )
    log.info("payments: ride %s authorization %s", ride.id, payment.status)
    return payment.status


@transactional_task(Job.SETTLE_RIDE)
def settle_ride(session: Session, ride_id: str) -> str:
    """At the ride's end: capture the fare (and charge what exceeds the hold), capture the
    fee of a cancellation or no-show, or release the hold."""
    rid = uuid.UUID(ride_id)
    ride = session.get(Ride, rid, with_for_update=True)
    auth = payment_of(session, rid, PaymentKind.AUTHORIZATION)
    if ride is None or auth is None:
        raise Retryable(f"ride {ride_id} or its payment not visible yet")
    due = amount_due(ride.status, ride.fare_amount, ride.fee_amount)
    decision = settle_hold(due, auth.status, auth.amount)
    if decision.step is HoldStep.WAIT:
        raise Retryable("the authorization has not been made yet")
    if decision.step in (HoldStep.CAPTURE, HoldStep.RELEASE):
        assert auth.stripe_payment_intent_id is not None
        try:
            if decision.step is HoldStep.CAPTURE:
                intent = _gateway().capture(auth.stripe_payment_intent_id, ride.id, decision.amount)
            else:
                intent = _gateway().release(auth.stripe_payment_intent_id, ride.id)
        except (CardDeclined, PaymentRefused) as exc:
            # the hold could not be captured (lapsed, refused): charge it all instead
            auth.status, auth.failure_code = PaymentStatus.FAILED, exc.code
            auth.failure_message = exc.detail[:500]
            session.add(auth)
            log.warning("payments: ride %s capture failed: %s", ride.id, exc.code)
            _charge_rest(session, ride, auth, due)
            return f"due {due}, capture failed"
        apply_intent(auth, intent)
        session.add(auth)
        record_received(session, auth)
    captured = captured_by_hold(auth.status, auth.amount_received)
    rest = rest_to_charge(due, captured)
    if rest > 0:
        _charge_rest(session, ride, auth, rest)
    return f"due {due}, captured {captured}, rest {rest}"


def _charge_rest(session: Session, ride: Ride, auth: Payment, amount: int) -> None:
    """What the hold did not cover, charged off-session; a failure is an outstanding
    balance that blocks the passenger's next request."""
    extra = payment_of(session, ride.id, PaymentKind.EXTRA_CHARGE)
    if extra is None:
        extra = new_payment(session, ride, PaymentKind.EXTRA_CHARGE, amount, auth.payment_method_id)
    if extra.status != PaymentStatus.PENDING:
        return
    _charge(session, extra, hold=False)


@transactional_task(Job.RECONCILE_EVENT)
def reconcile_event(session: Session, event_id: str) -> str:
    """Bring our payment in line with Stripe's current state of the event's object.

    The event only says *which* object changed; its state is read fresh from Stripe, so a
    duplicate, a late or an out-of-order event all end in the same, current state.
    """
    event = session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        raise Retryable(f"event {event_id} not visible yet")
    if event.processed_at is not None:
        return event.result or "done"
    obj = (event.payload.get("data") or {}).get("object") or {}
    if obj.get("object") == "refund":
        event.result = reconcile_refund(session, str(obj.get("id")))
    elif obj.get("object") != "payment_intent":
        event.result = "ignored"
    else:
        payment = session.exec(
            select(Payment)
            .where(Payment.stripe_payment_intent_id == obj.get("id"))
            .with_for_update()
        ).first()
        if payment is None:
            ours = (obj.get("metadata") or {}).get("payment_id")
            if ours:
                # our own transaction has not committed yet: try again
                raise Retryable(f"payment {ours} of {obj.get('id')} not visible yet")
            event.result = "not ours"
        else:
            apply_intent(payment, _gateway().intent(obj["id"]))
            session.add(payment)
            record_received(session, payment)
            event.result = f"payment {payment.status}"
    event.processed_at = utcnow()
    session.add(event)
    created = event.payload.get("created")
    if isinstance(created, int | float):
        WEBHOOK_LAG.observe(max(0.0, event.processed_at.timestamp() - created))
    return event.result or ""


def reconcile_refund(session: Session, stripe_refund_id: str) -> str:
    """A refund's state as Stripe has it now (a refund can fail after it was accepted)."""
    row = session.exec(
        select(Refund).where(Refund.stripe_refund_id == stripe_refund_id).with_for_update()
    ).first()
    if row is None:
        return "not ours"
    status = _gateway().refund_state(stripe_refund_id)
    if status == row.status:
        return f"refund {status}"
    payment = session.exec(
        select(Payment).where(Payment.id == row.payment_id).with_for_update()
    ).one()
    if row.status == RefundStatus.SUCCEEDED and status in (
        RefundStatus.FAILED,
        RefundStatus.CANCELED,
    ):
        # the money did not go back after all: undo what we booked
        payment.amount_refunded -= row.amount
        SqlLedger(session).post(
            refund_entry(row.id, payment.ride_id, Money(row.amount, row.currency), reversed=True)
        )
        log.error("ALERT refund %s %s after succeeding", row.id, status)
    elif status == RefundStatus.SUCCEEDED:
        _refunded(session, row, payment)
    row.status, row.updated_at = status, utcnow()
    session.add_all([row, payment])
    return f"refund {status}"


@transactional_task(Job.REFUND)
def refund(session: Session, refund_id: str) -> str:
    row = session.exec(
        select(Refund).where(Refund.id == uuid.UUID(refund_id)).with_for_update()
    ).first()
    if row is None:
        raise Retryable(f"refund {refund_id} not visible yet")
    if row.status != RefundStatus.PENDING:
        return row.status
    payment = session.exec(
        select(Payment).where(Payment.id == row.payment_id).with_for_update()
    ).one()
    assert payment.stripe_payment_intent_id is not None
    try:
        result = _gateway().refund(row.id, payment.stripe_payment_intent_id, row.amount, row.reason)
    except PaymentRefused as exc:
        row.status, row.updated_at = RefundStatus.FAILED, utcnow()
        session.add(row)
        log.error("ALERT refund %s refused by Stripe: %s", row.id, exc.detail)
        return "failed"
    row.stripe_refund_id = result.id
    row.status = str(result.status)
    row.updated_at = utcnow()
    session.add(row)
    if row.status == RefundStatus.SUCCEEDED:
        _refunded(session, row, payment)
    return row.status


def _refunded(session: Session, row: Refund, payment: Payment) -> None:
    """A refund Stripe made: on the payment, in the ledger, and told to the rider."""
    payment.amount_refunded += row.amount
    payment.updated_at = utcnow()
    session.add(payment)
    SqlLedger(session).post(refund_entry(row.id, payment.ride_id, Money(row.amount, row.currency)))
    push = payment_push(
        NotificationKind.REFUNDED,
        payment.passenger_id,
        payment.ride_id,
        f"refund:{row.id}",
        row.amount,
        row.currency,
    )
    log_pushes(session, [push])
