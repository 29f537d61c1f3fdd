"""Card money movement, always by workers: authorize at request, capture or release at the
end. Every Stripe call carries an idempotency key made of domain ids, so a retry, a
redelivery or a worker killed mid-call cannot move money twice."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import stripe
from sqlmodel import Session, col, select

from domain import rides as ride_rules
from domain.ledger import refund_entry, refund_reversal_entry
from domain.money import Money
from domain.rides import Actor, RideStatus
from infra import jobs
from infra.db import utcnow
from infra.live import LiveSync
from infra.models import Payment, Refund, Ride, User, WebhookEvent
from infra.offers import SqlOfferBook
from infra.payments import apply_intent, payment_of, record_received
from infra.ratelimit import RedisVelocity
from infra.redis import get_sync_redis
from infra.repositories import RedisLiveState, SqlLedger
from infra.settings import get_settings
from infra.stripe_gateway import stripe_client
from workers.base import Retryable, transactional_task

log = logging.getLogger(__name__)


def _client() -> stripe.StripeClient:
    return stripe_client(retries=0)  # Celery retries with backoff; the key makes it safe


def _default_pm(customer: str) -> str | None:
    c = _client().v1.customers.retrieve(customer)
    default = getattr(getattr(c, "invoice_settings", None), "default_payment_method", None)
    if default:
        return default if isinstance(default, str) else default.id
    cards = _client().v1.customers.payment_methods.list(customer, params={"type": "card"})
    return cards.data[0].id if cards.data else None


def _charge_off_session(
    payment: Payment, customer: str, pm: str, *, manual: bool, description: str, key: str
) -> Any:
    """A PaymentIntent for `payment` on a saved card, the rider absent; held for a later
    capture when `manual`. Cards only, never a redirect: there is no page to return to."""
    params: dict[str, Any] = {
        "amount": payment.amount,
        "currency": payment.currency,
        "customer": customer,
        "payment_method": pm,
        "confirm": True,
        "off_session": True,
        "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        "description": description,
        "metadata": {"ride_id": str(payment.ride_id), "payment_id": str(payment.id)},
        "expand": ["latest_charge"],
    }
    if manual:
        params["capture_method"] = "manual"
    return _client().v1.payment_intents.create(
        params=params,  # type: ignore[arg-type]
        options={"idempotency_key": key},
    )


def _card_failed(payment: Payment, exc: stripe.CardError) -> None:
    err: Any = exc.error
    intent = getattr(err, "payment_intent", None) if err else None
    if intent is not None and getattr(intent, "id", None):
        payment.stripe_payment_intent_id = intent.id
    code = (getattr(err, "code", None) if err else None) or exc.code
    payment.status = "requires_action" if code == "authentication_required" else "failed"
    payment.failure_code = (getattr(err, "decline_code", None) if err else None) or code
    payment.failure_message = (exc.user_message or str(exc))[:500]
    payment.updated_at = utcnow()


def _tell_rider(payment: Payment, kind: str) -> None:
    """The rider must fix their card: an event on their own stream, which the push
    notifications work turns into a push; and a log line ops can alert on."""
    log.warning("payments: %s for ride %s (%s)", kind, payment.ride_id, payment.failure_code)
    RedisVelocity(get_sync_redis()).hit("failed_payments", payment.passenger_id, 10**6, 3600)
    LiveSync(get_sync_redis()).emit(
        f"user:{payment.passenger_id}:events",
        kind,
        {
            "ride_id": str(payment.ride_id),
            "payment_id": str(payment.id),
            "amount": payment.amount - payment.amount_received,
            "currency": payment.currency,
            "code": payment.failure_code,
        },
    )


def _post_received(session: Session, payment: Payment, ride: Ride) -> None:
    record_received(session, payment)


@transactional_task("payments.authorize_ride")
def authorize_ride(session: Session, ride_id: str) -> str:
    """Hold the estimate plus a margin on the passenger's card (manual capture)."""
    rid = uuid.UUID(ride_id)
    ride = session.get(Ride, rid, with_for_update=True)
    payment = payment_of(session, rid, "authorization")
    if ride is None or payment is None:
        raise Retryable(f"ride {ride_id} or its payment not visible yet")
    if payment.status != "pending":
        return payment.status
    user = session.get(User, ride.passenger_id)
    customer = user.stripe_customer_id if user else None
    pm = payment.payment_method_id or (_default_pm(customer) if customer else None)
    if not customer or not pm:
        payment.status, payment.failure_code = "failed", "no_payment_method"
    else:
        payment.payment_method_id = pm
        try:
            intent = _charge_off_session(
                payment,
                customer,
                pm,
                manual=True,
                description=f"ride {ride.id}",
                key=f"ride-{ride.id}-authorize",
            )
            apply_intent(payment, intent)
        except stripe.CardError as exc:
            _card_failed(payment, exc)
    session.add(payment)
    if payment.status in ("failed", "requires_action"):
        _tell_rider(
            payment, "payment_failed" if payment.status == "failed" else "payment_requires_action"
        )
    if payment.status == "failed" and ride.status in ride_rules.OPEN:
        # a declined card: no hold, no ride; stop dispatch and tell everyone. (A card that
        # needs 3-D Secure keeps its ride: the app confirms on the device.)
        now = utcnow()
        event = ride_rules.cancel(
            ride,
            Actor.ADMIN,
            now,
            get_settings().fare_rules,
            f"card authorization {payment.status}",
        )
        session.add(ride)
        SqlOfferBook(session).withdraw_all(ride, "cancelled", now)
        RedisLiveState(session).ride_changed(ride, event)
    log.info("payments: ride %s authorization %s", ride.id, payment.status)
    return payment.status


@transactional_task("payments.settle_ride")
def settle_ride(session: Session, ride_id: str) -> str:
    """At the ride's end: capture the fare (and charge what exceeds the hold), capture the
    fee of a cancellation or no-show, or release the hold."""
    rid = uuid.UUID(ride_id)
    ride = session.get(Ride, rid, with_for_update=True)
    auth = payment_of(session, rid, "authorization")
    if ride is None or auth is None:
        raise Retryable(f"ride {ride_id} or its payment not visible yet")
    if ride.status == RideStatus.COMPLETED:
        due = ride.fare_amount or 0
    elif ride.status in (RideStatus.CANCELLED, RideStatus.NO_SHOW):
        due = ride.fee_amount or 0
    else:
        due = 0
    if auth.status == "pending":
        raise Retryable("the authorization has not been made yet")
    captured = 0
    if auth.status == "requires_capture":
        assert auth.stripe_payment_intent_id is not None
        if due > 0:
            try:
                intent = _client().v1.payment_intents.capture(
                    auth.stripe_payment_intent_id,
                    params={
                        "amount_to_capture": min(due, auth.amount),
                        "expand": ["latest_charge"],
                    },
                    options={"idempotency_key": f"ride-{ride.id}-capture"},
                )
            except (stripe.CardError, stripe.InvalidRequestError) as exc:
                # the hold could not be captured (lapsed, refused): charge it all instead
                auth.status, auth.failure_code = "failed", exc.code or "capture_failed"
                auth.failure_message = (exc.user_message or str(exc))[:500]
                session.add(auth)
                log.warning("payments: ride %s capture failed: %s", ride.id, exc.code)
                _charge_rest(session, ride, auth, due)
                return f"due {due}, capture failed"
        else:
            intent = _client().v1.payment_intents.cancel(
                auth.stripe_payment_intent_id,
                options={"idempotency_key": f"ride-{ride.id}-release"},
            )
        apply_intent(auth, intent)
        session.add(auth)
        _post_received(session, auth, ride)
        captured = auth.amount_received
    elif auth.status == "succeeded":
        captured = auth.amount_received
    elif auth.status == "canceled":
        captured = 0  # released earlier (or lapsed): whatever is due is charged below
    rest = due - captured
    if rest > 0:
        _charge_rest(session, ride, auth, rest)
    return f"due {due}, captured {captured}, rest {max(rest, 0)}"


def _charge_rest(session: Session, ride: Ride, auth: Payment, amount: int) -> None:
    """What the hold did not cover, charged off-session; a failure is an outstanding
    balance that blocks the passenger's next request."""
    extra = payment_of(session, ride.id, "extra_charge")
    if extra is None:
        extra = Payment(
            ride_id=ride.id,
            passenger_id=ride.passenger_id,
            kind="extra_charge",
            status="pending",
            amount=amount,
            currency=ride.currency,
            payment_method_id=auth.payment_method_id,
        )
        session.add(extra)
        session.flush()
    if extra.status not in ("pending",):
        return
    user = session.get(User, ride.passenger_id)
    try:
        intent = _charge_off_session(
            extra,
            (user.stripe_customer_id if user else None) or "",
            extra.payment_method_id or "",
            manual=False,
            description=f"ride {ride.id} (beyond the hold)",
            key=f"ride-{ride.id}-extra",
        )
        apply_intent(extra, intent)
    except stripe.CardError as exc:
        _card_failed(extra, exc)
        _tell_rider(extra, "payment_failed")
    except stripe.InvalidRequestError as exc:
        # e.g. the card was removed meanwhile: nothing to charge, so the rider owes it
        extra.status, extra.failure_code = "failed", exc.code or "payment_method_unusable"
        extra.failure_message = (exc.user_message or str(exc))[:500]
        _tell_rider(extra, "payment_failed")
    session.add(extra)
    _post_received(session, extra, ride)


@transactional_task("payments.reconcile_event")
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
        event.result = _reconcile_refund(session, str(obj.get("id")))
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
                # our own transaction has not committed yet (Polar saw this): try again
                raise Retryable(f"payment {ours} of {obj.get('id')} not visible yet")
            event.result = "not ours"
        else:
            intent = _client().v1.payment_intents.retrieve(
                obj["id"], params={"expand": ["latest_charge"]}
            )
            apply_intent(payment, intent)
            session.add(payment)
            ride = session.get(Ride, payment.ride_id)
            if ride is not None:
                _post_received(session, payment, ride)
            event.result = f"payment {payment.status}"
    event.processed_at = utcnow()
    session.add(event)
    return event.result or ""


_STRIPE_REASONS = {"duplicate", "fraudulent", "requested_by_customer"}


def _reconcile_refund(session: Session, stripe_refund_id: str) -> str:
    """A refund's state as Stripe has it now (a refund can fail after it was accepted)."""
    row = session.exec(
        select(Refund).where(Refund.stripe_refund_id == stripe_refund_id).with_for_update()
    ).first()
    if row is None:
        return "not ours"
    current = _client().v1.refunds.retrieve(stripe_refund_id)
    status = str(current.status)
    if status == row.status:
        return f"refund {status}"
    payment = session.exec(
        select(Payment).where(Payment.id == row.payment_id).with_for_update()
    ).one()
    if row.status == "succeeded" and status in ("failed", "canceled"):
        # the money did not go back after all: undo what we booked
        payment.amount_refunded -= row.amount
        SqlLedger(session).post(
            refund_reversal_entry(row.id, payment.ride_id, Money(row.amount, row.currency))
        )
        log.error("ALERT refund %s %s after succeeding", row.id, status)
    elif status == "succeeded":
        payment.amount_refunded += row.amount
        SqlLedger(session).post(
            refund_entry(row.id, payment.ride_id, Money(row.amount, row.currency))
        )
    row.status, row.updated_at = status, utcnow()
    session.add_all([row, payment])
    return f"refund {status}"


@transactional_task("payments.refund")
def refund(session: Session, refund_id: str) -> str:
    row = session.exec(
        select(Refund).where(Refund.id == uuid.UUID(refund_id)).with_for_update()
    ).first()
    if row is None:
        raise Retryable(f"refund {refund_id} not visible yet")
    if row.status != "pending":
        return row.status
    payment = session.exec(
        select(Payment).where(Payment.id == row.payment_id).with_for_update()
    ).one()
    params: dict[str, Any] = {
        "payment_intent": payment.stripe_payment_intent_id,
        "amount": row.amount,
        "metadata": {"refund_id": str(row.id), "reason": row.reason[:400]},
    }
    if row.reason in _STRIPE_REASONS:
        params["reason"] = row.reason
    try:
        result = _client().v1.refunds.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": f"refund-{row.id}"},
        )
    except stripe.InvalidRequestError as exc:
        row.status, row.updated_at = "failed", utcnow()
        session.add(row)
        log.error("ALERT refund %s refused by Stripe: %s", row.id, exc.user_message)
        return "failed"
    row.stripe_refund_id = result.id
    row.status = "succeeded" if result.status == "succeeded" else str(result.status)
    row.updated_at = utcnow()
    session.add(row)
    if row.status == "succeeded":
        payment.amount_refunded += row.amount
        payment.updated_at = utcnow()
        session.add(payment)
        SqlLedger(session).post(
            refund_entry(row.id, payment.ride_id, Money(row.amount, row.currency))
        )
    return row.status


@transactional_task("payments.sweep_holds", max_retries=0)
def sweep_holds(session: Session) -> int:
    """Beat job, the safety net of holds: a ride that ended with its hold still uncaptured
    (its settle job failed or was lost) is settled again, long before the authorization
    lapses (`capture_before`: 7 days, less for some card brands)."""
    stale = session.exec(
        select(Payment.ride_id)
        .join(Ride, col(Ride.id) == col(Payment.ride_id))
        .where(
            Payment.kind == "authorization",
            Payment.status == "requires_capture",
            col(Ride.status).in_(ride_rules.TERMINAL),
            col(Payment.updated_at) < utcnow() - timedelta(minutes=10),
        )
        .limit(200)
    ).all()
    for ride_id in stale:
        jobs.enqueue(session, "payments.settle_ride", ride_id=str(ride_id))
    if stale:
        log.warning("payments: %d ended ride(s) still held; settling again", len(stale))
    return len(stale)
