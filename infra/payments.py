"""Card payments in SQL: the PaymentBook port, and mirroring PaymentIntents onto rows."""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, col, func, select

from domain.errors import Conflict, NotFound
from domain.ledger import card_received_entry
from domain.money import Money
from domain.rides import RideState
from infra import jobs
from infra.db import utcnow
from infra.models import Payment, Refund, User
from infra.repositories import SqlLedger

#: what a PaymentIntent's status means for our row
_STATUS = {
    "requires_capture": "requires_capture",
    "succeeded": "succeeded",
    "requires_action": "requires_action",
    "requires_confirmation": "requires_action",
    "canceled": "canceled",
    "requires_payment_method": "failed",
    "processing": "pending",
}
OWED = ("failed", "requires_action")


class SqlPaymentBook:
    def __init__(self, session: Session) -> None:
        self.session = session

    def outstanding(self, passenger_id: uuid.UUID) -> int:
        total = self.session.exec(
            select(func.coalesce(func.sum(Payment.amount - Payment.amount_received), 0)).where(
                Payment.passenger_id == passenger_id,
                col(Payment.status).in_(OWED),
                Payment.kind == "extra_charge",
            )
        ).one()
        return int(total)

    def can_charge(self, passenger_id: uuid.UUID) -> bool:
        user = self.session.get(User, passenger_id)
        return bool(user and user.stripe_customer_id)

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        self.session.add(
            Payment(
                ride_id=ride.id,
                passenger_id=ride.passenger_id,
                kind="authorization",
                status="pending",
                amount=amount,
                currency=ride.currency,
                payment_method_id=payment_method_id,
            )
        )


def payment_of(session: Session, ride_id: uuid.UUID, kind: str) -> Payment | None:
    return session.exec(
        select(Payment).where(Payment.ride_id == ride_id, Payment.kind == kind).with_for_update()
    ).first()


def apply_intent(payment: Payment, intent: Any) -> None:
    """Mirror Stripe's state of the PaymentIntent onto the row (Stripe is the truth)."""
    payment.stripe_payment_intent_id = intent.id
    payment.status = _STATUS.get(intent.status, payment.status)
    payment.amount_received = int(getattr(intent, "amount_received", 0) or 0)
    charge = getattr(intent, "latest_charge", None)
    outcome = getattr(charge, "outcome", None) if charge and not isinstance(charge, str) else None
    if outcome is not None:
        payment.risk_level = getattr(outcome, "risk_level", None)
        score = getattr(outcome, "risk_score", None)
        payment.risk_score = int(score) if score is not None else None
    error = getattr(intent, "last_payment_error", None)
    if error is not None and payment.status == "failed":
        payment.failure_code = getattr(error, "decline_code", None) or getattr(error, "code", None)
        payment.failure_message = (getattr(error, "message", None) or "")[:500]
    payment.updated_at = utcnow()


def payments_of_ride(session: Session, ride_id: uuid.UUID) -> list[Payment]:
    return list(
        session.exec(
            select(Payment).where(Payment.ride_id == ride_id).order_by(col(Payment.created_at))
        ).all()
    )


def request_refund(
    session: Session,
    payment_id: uuid.UUID,
    amount: int | None,
    reason: str,
    admin_id: uuid.UUID,
) -> Refund:
    payment = session.exec(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).first()
    if payment is None:
        raise NotFound("payment not found", code="payment_not_found")
    if payment.amount_received <= 0:
        raise Conflict("nothing was captured on this payment", code="nothing_to_refund")
    pending = session.exec(
        select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment.id, Refund.status != "failed"
        )
    ).one()
    refundable = payment.amount_received - int(pending)
    amount = refundable if amount is None else amount
    if amount <= 0 or amount > refundable:
        raise Conflict(
            f"at most {refundable} can still be refunded on this payment",
            code="refund_exceeds_captured",
        )
    refund = Refund(
        payment_id=payment.id,
        amount=amount,
        currency=payment.currency,
        reason=reason,
        status="pending",
        requested_by=admin_id,
    )
    session.add(refund)
    session.flush()
    jobs.enqueue(session, "payments.refund", refund_id=str(refund.id))
    return refund


def record_received(session: Session, payment: Payment) -> None:
    """Post what Stripe took on this payment to the ledger (once: the entry key)."""
    if payment.amount_received > 0:
        SqlLedger(session).post(
            card_received_entry(
                payment.id,
                payment.ride_id,
                payment.passenger_id,
                Money(payment.amount_received, payment.currency),
            )
        )
