"""Card payment rules: kinds and statuses, what to do with a hold at a ride's end, how much
may still be refunded. Pure: the Stripe gateway (`infra/stripe_gateway.py`) makes the
calls these decisions ask for, and workers store what Stripe answered.

A card ride has one `authorization` (held at request for the estimate plus a margin,
manual capture) and, when the hold falls short or could not be captured, one
`extra_charge` made off-session. A failed or `requires_action` extra charge is money the
rider owes (`OWED`): it blocks their next request until the app settles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from domain.errors import Conflict, DomainError, ErrorKind
from domain.rides import RideStatus


class PaymentKind(StrEnum):
    """`authorization`: the hold at the request, captured at completion; `extra_charge`:
    what the hold did not cover."""

    AUTHORIZATION = "authorization"
    EXTRA_CHARGE = "extra_charge"


class PaymentStatus(StrEnum):
    """Where a payment is at Stripe."""

    PENDING = "pending"  # recorded, not yet asked of Stripe (or processing there)
    REQUIRES_CAPTURE = "requires_capture"  # the hold stands
    REQUIRES_ACTION = "requires_action"  # 3-D Secure on the device
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"  # the hold was released (or lapsed)
    FAILED = "failed"


class RefundStatus(StrEnum):
    """`pending` until Stripe answers, then `succeeded` or `failed`."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


#: what the rider owes on an extra charge in these states
OWED = frozenset({PaymentStatus.FAILED, PaymentStatus.REQUIRES_ACTION})

#: a PaymentIntent's status, as our payment row records it
FROM_INTENT_STATUS: dict[str, PaymentStatus] = {
    "requires_capture": PaymentStatus.REQUIRES_CAPTURE,
    "succeeded": PaymentStatus.SUCCEEDED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "requires_confirmation": PaymentStatus.REQUIRES_ACTION,
    "canceled": PaymentStatus.CANCELED,
    "requires_payment_method": PaymentStatus.FAILED,
    "processing": PaymentStatus.PENDING,
}

#: refund reasons Stripe itself knows; others travel in metadata only
STRIPE_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


def amount_due(status: str, fare_amount: int | None, fee_amount: int | None) -> int:
    """What an ended ride costs the rider: the fare, a cancellation or no-show fee, or 0."""
    if status == RideStatus.COMPLETED:
        return fare_amount or 0
    if RideStatus(status).ended_unfinished:
        return fee_amount or 0
    return 0


class HoldStep(StrEnum):
    WAIT = "wait"  # the hold is not made yet: come back later
    CAPTURE = "capture"  # capture `amount` of the hold
    RELEASE = "release"  # nothing is due: cancel the hold
    NOTHING = "nothing"  # the hold is already captured, released or failed


@dataclass(frozen=True, slots=True)
class HoldDecision:
    step: HoldStep
    amount: int = 0


def settle_hold(due: int, hold_status: str, hold_amount: int) -> HoldDecision:
    """The first step of settling a ride's card payment: what to do with its hold.

    Capture what is due, up to the hold (Stripe refuses more); release a hold nothing is
    due on. A hold already captured or released is left alone: the rest, if any, is
    charged separately (`rest_to_charge`)."""
    if hold_status == PaymentStatus.PENDING:
        return HoldDecision(HoldStep.WAIT)
    if hold_status != PaymentStatus.REQUIRES_CAPTURE:
        return HoldDecision(HoldStep.NOTHING)
    if due > 0:
        return HoldDecision(HoldStep.CAPTURE, min(due, hold_amount))
    return HoldDecision(HoldStep.RELEASE)


def captured_by_hold(hold_status: str, amount_received: int) -> int:
    """What the hold has brought in once settled (0 if it was released, lapsed or failed)."""
    return amount_received if hold_status == PaymentStatus.SUCCEEDED else 0


def rest_to_charge(due: int, captured: int) -> int:
    """What the hold did not cover, to charge off-session (never negative)."""
    return max(0, due - captured)


def refundable(amount_received: int, refunds_not_failed: int) -> int:
    """What may still be refunded on a payment: captured, less refunds pending or made."""
    return max(0, amount_received - refunds_not_failed)


def refund_amount(requested: int | None, amount_received: int, refunds_not_failed: int) -> int:
    """The amount of a new refund (all that is left by default); never more than captured."""
    if amount_received <= 0:
        raise Conflict("nothing was captured on this payment", code="nothing_to_refund")
    left = refundable(amount_received, refunds_not_failed)
    amount = left if requested is None else requested
    if amount <= 0 or amount > left:
        raise Conflict(
            f"at most {left} can still be refunded on this payment",
            code="refund_exceeds_captured",
        )
    return amount


# --- what the payment provider answered, mapped once by the gateway -----------------------
class PaymentProviderError(DomainError, kind=ErrorKind.UNAVAILABLE, code="payment_provider_error"):
    """Stripe refused or failed a call; subclasses say how."""


class ProviderUnavailable(PaymentProviderError, code="payment_provider_unavailable"):
    """Network, timeouts, 429, 5xx, an idempotency key still in use: try again later."""


class CardDeclined(PaymentProviderError, kind=ErrorKind.CONFLICT, code="card_declined"):
    """An answer, not a fault: the card said no (or needs the rider: 3-D Secure)."""

    def __init__(
        self,
        detail: str,
        *,
        code: str = "card_declined",
        decline_code: str | None = None,
        intent_id: str | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        self.decline_code = decline_code
        self.intent_id = intent_id

    @property
    def needs_authentication(self) -> bool:
        return self.code == "authentication_required"


class PaymentRefused(
    PaymentProviderError, kind=ErrorKind.INVALID, code="payment_provider_rejected"
):
    """The request was refused as it stands (a removed card, a lapsed hold, bad params)."""


class PaymentObjectMissing(
    PaymentProviderError, kind=ErrorKind.NOT_FOUND, code="payment_method_not_found"
):
    """No such card (or not this rider's)."""


def apply_intent(payment: Any, intent: Any, now: datetime) -> None:
    """Mirror Stripe's state of the PaymentIntent onto the row (Stripe is the truth)."""
    payment.stripe_payment_intent_id = intent.id
    payment.status = FROM_INTENT_STATUS.get(intent.status, PaymentStatus(payment.status))
    payment.amount_received = int(getattr(intent, "amount_received", 0) or 0)
    charge = getattr(intent, "latest_charge", None)
    outcome = getattr(charge, "outcome", None) if charge and not isinstance(charge, str) else None
    details = getattr(charge, "payment_method_details", None) if outcome is not None else None
    lapses = getattr(getattr(details, "card", None), "capture_before", None)
    if lapses:
        payment.capture_before = datetime.fromtimestamp(int(lapses), UTC)
    if outcome is not None:
        payment.risk_level = getattr(outcome, "risk_level", None)
        score = getattr(outcome, "risk_score", None)
        payment.risk_score = int(score) if score is not None else None
    error = getattr(intent, "last_payment_error", None)
    if error is not None and payment.status == PaymentStatus.FAILED:
        payment.failure_code = getattr(error, "decline_code", None) or getattr(error, "code", None)
        payment.failure_message = (getattr(error, "message", None) or "")[:500]
    payment.updated_at = now
