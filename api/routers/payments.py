"""Saving cards on the device (SetupIntent) and managing saved cards.

No card data reaches this server: the app confirms the SetupIntent with Stripe's SDK
using the client secret; we only ever see payment method ids. These requests call
Stripe because Stripe's answer is the response (short timeout, few retries).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import stripe
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.deps import CurrentAdmin, CurrentCaller, CurrentPassenger, SessionDep
from api.errors import ApiError
from api.live import visible_ride
from infra.db import unit_of_work
from infra.models import Payment, Refund, User
from infra.payments import apply_intent, payments_of_ride, record_received, request_refund
from infra.ratelimit import RedisVelocity
from infra.redis import get_sync_redis
from infra.settings import get_settings
from infra.stripe_gateway import ensure_customer, stripe_client

router = APIRouter(prefix="/api/v1/payments", tags=["payments"])


class SetupIntentOut(BaseModel):
    client_secret: str
    setup_intent_id: str
    customer_id: str


class CardOut(BaseModel):
    id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    default: bool


@contextmanager
def _stripe_errors() -> Iterator[None]:
    try:
        yield
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise ApiError(404, "payment method not found", "payment_method_not_found") from exc
        raise ApiError(
            400, exc.user_message or "rejected by the payment provider", "payment_provider_rejected"
        ) from exc
    except stripe.APIConnectionError as exc:
        raise ApiError(
            503, "the payment provider is unreachable; try again", "payment_provider_unavailable"
        ) from exc
    except stripe.StripeError as exc:
        raise ApiError(
            502, "the payment provider failed; try again", "payment_provider_error"
        ) from exc


def _customer(session: SessionDep, caller_id: Any) -> tuple[User, str]:
    user = session.get(User, caller_id)
    if user is None:
        raise ApiError(401, "account no longer exists", "invalid_token")
    with _stripe_errors():
        return user, ensure_customer(session, user)


@router.post("/setup-intent", response_model=SetupIntentOut)
def setup_intent(caller: CurrentPassenger, session: SessionDep) -> SetupIntentOut:
    """A client secret for the app to save a card with Stripe's SDK, for rides later
    (off-session). The card is attached to the passenger's customer when confirmed."""
    limit = get_settings().fraud_cards_per_hour
    wait = RedisVelocity(get_sync_redis()).hit("cards", caller.id, limit, 3600)
    if wait:
        raise ApiError(
            429, "too many cards added this hour", "too_many_cards", {"Retry-After": str(wait)}
        )
    user, customer = _customer(session, caller.id)
    with _stripe_errors():
        intent = stripe_client().v1.setup_intents.create(
            params={
                "customer": customer,
                "usage": "off_session",
                # API 2026-09-30+: `payment_method_types` is refused on intents
                "allowed_payment_method_types": ["card"],
                "metadata": {"user_id": str(user.id)},
            }
        )
    assert intent.client_secret is not None
    return SetupIntentOut(
        client_secret=intent.client_secret, setup_intent_id=intent.id, customer_id=customer
    )


def _default_pm(customer_id: str) -> str | None:
    customer = stripe_client().v1.customers.retrieve(customer_id)
    settings = getattr(customer, "invoice_settings", None)
    default = getattr(settings, "default_payment_method", None) if settings else None
    return default if isinstance(default, str) or default is None else default.id


def _owned(customer_id: str, pm_id: str) -> Any:
    pm = stripe_client().v1.payment_methods.retrieve(pm_id)
    if getattr(pm, "customer", None) != customer_id:
        # someone else's card, or none: it does not exist for this passenger
        raise ApiError(404, "payment method not found", "payment_method_not_found")
    return pm


@router.get("/methods")
def methods(caller: CurrentPassenger, session: SessionDep) -> dict[str, Any]:
    """The passenger's saved cards (brand, last 4 digits, expiry), the default marked."""
    _user, customer = _customer(session, caller.id)
    with _stripe_errors():
        cards = stripe_client().v1.customers.payment_methods.list(
            customer, params={"type": "card", "limit": 100}
        )
        default = _default_pm(customer)
    items = []
    for pm in cards.data:
        card = getattr(pm, "card", None)
        items.append(
            CardOut(
                id=pm.id,
                brand=getattr(card, "brand", None),
                last4=getattr(card, "last4", None),
                exp_month=getattr(card, "exp_month", None),
                exp_year=getattr(card, "exp_year", None),
                default=pm.id == default,
            ).model_dump()
        )
    return {"items": items, "next_cursor": None}


@router.delete("/methods/{pm_id}", status_code=204)
def detach(pm_id: str, caller: CurrentPassenger, session: SessionDep) -> Response:
    _user, customer = _customer(session, caller.id)
    with _stripe_errors():
        _owned(customer, pm_id)
        stripe_client().v1.payment_methods.detach(
            pm_id, options={"idempotency_key": f"detach-{customer}-{pm_id}"}
        )
    return Response(status_code=204)


@router.post("/methods/{pm_id}/default", response_model=CardOut)
def make_default(pm_id: str, caller: CurrentPassenger, session: SessionDep) -> CardOut:
    _user, customer = _customer(session, caller.id)
    with _stripe_errors():
        pm = _owned(customer, pm_id)
        stripe_client().v1.customers.update(
            customer, params={"invoice_settings": {"default_payment_method": pm_id}}
        )
    card = getattr(pm, "card", None)
    return CardOut(
        id=pm.id,
        brand=getattr(card, "brand", None),
        last4=getattr(card, "last4", None),
        exp_month=getattr(card, "exp_month", None),
        exp_year=getattr(card, "exp_year", None),
        default=True,
    )


# --- payments of a ride, and refunds -----------------------------------------------------
class PaymentOut(BaseModel):
    id: uuid.UUID
    ride_id: uuid.UUID
    kind: str
    status: str
    amount: int
    amount_received: int
    amount_refunded: int
    currency: str
    risk_level: str | None
    failure_code: str | None
    created_at: datetime


class RefundIn(BaseModel):
    amount: int | None = Field(default=None, gt=0, description="minor units; default: all")
    reason: str = Field(min_length=1, max_length=500)


class RefundOut(BaseModel):
    id: uuid.UUID
    payment_id: uuid.UUID
    amount: int
    currency: str
    reason: str
    status: str
    created_at: datetime


@router.get("")
async def ride_payments(
    request: Request,
    ride_id: uuid.UUID,
    caller: CurrentCaller,
) -> dict[str, Any]:
    """The payments of a ride (its participants and admins), with refunded amounts."""
    await visible_ride(request, caller, str(ride_id))
    rows = await asyncio.to_thread(_payments_of, ride_id)
    return {
        "items": [PaymentOut.model_validate(r, from_attributes=True) for r in rows],
        "next_cursor": None,
    }


def _payments_of(ride_id: uuid.UUID) -> list[Payment]:
    with unit_of_work() as session:
        return payments_of_ride(session, ride_id)


@router.post("/{payment_id}/refunds", status_code=201, response_model=RefundOut)
def refund(
    payment_id: uuid.UUID, body: RefundIn, caller: CurrentAdmin, session: SessionDep
) -> Refund:
    """A full or partial refund, never more than what was captured and not yet refunded.
    Stripe is asked by a worker; the refund's status follows."""
    return request_refund(session, payment_id, body.amount, body.reason, caller.id)


# --- on-device flows (3-D Secure, fixing a failed payment) ---------------------------------
class IntentIn(BaseModel):
    ride_id: uuid.UUID


class IntentOut(BaseModel):
    id: str
    payment_id: uuid.UUID
    client_secret: str | None
    status: str
    amount: int
    currency: str


def _needing_device(payments: list[Payment]) -> Payment | None:
    """The ride's payment the device should act on: what is owed first, else the hold."""
    for kind in ("extra_charge", "authorization"):
        for p in payments:
            if p.kind == kind and p.stripe_payment_intent_id:
                if kind == "authorization" or p.status in ("failed", "requires_action"):
                    return p
    return None


@router.post("/intent", response_model=IntentOut)
def ride_intent(body: IntentIn, caller: CurrentPassenger, session: SessionDep) -> IntentOut:
    """The ride's PaymentIntent, with the client secret the app needs to authenticate
    (3-D Secure) or to pay with another card."""
    rows = [p for p in payments_of_ride(session, body.ride_id) if p.passenger_id == caller.id]
    if not rows:
        raise ApiError(404, "no card payment for this ride", "payment_not_found")
    payment = _needing_device(rows)
    if payment is None or payment.stripe_payment_intent_id is None:
        raise ApiError(409, "this ride's payment never reached Stripe", "no_intent")
    with _stripe_errors():
        intent = stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    return IntentOut(
        id=intent.id,
        payment_id=payment.id,
        client_secret=intent.client_secret,
        status=intent.status,
        amount=intent.amount,
        currency=intent.currency,
    )


@router.post("/{payment_id}/confirm", response_model=PaymentOut)
def confirm(payment_id: uuid.UUID, caller: CurrentPassenger, session: SessionDep) -> Payment:
    """After the device authenticated (or attached a new card): confirm what still needs
    confirming and take Stripe's state; a payment that succeeds clears the balance."""
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None or payment.passenger_id != caller.id:
        raise ApiError(404, "payment not found", "payment_not_found")
    if payment.stripe_payment_intent_id is None:
        raise ApiError(409, "this payment never reached Stripe", "no_intent")
    client = stripe_client()
    with _stripe_errors():
        try:
            intent = client.v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
            if intent.status == "requires_confirmation":
                intent = client.v1.payment_intents.confirm(
                    intent.id, options={"idempotency_key": f"confirm-{payment.id}-{intent.id}"}
                )
        except stripe.CardError as exc:
            raise ApiError(
                409, exc.user_message or "the card was declined", "card_declined"
            ) from exc
    apply_intent(payment, intent)
    session.add(payment)
    record_received(session, payment)
    return payment
