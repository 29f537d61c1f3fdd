"""Saving cards on the device (SetupIntent) and managing saved cards.

No card data reaches this server: the app confirms the SetupIntent with Stripe's SDK
using the client secret; we only ever see payment method ids. These requests call
Stripe because Stripe's answer is the response (short timeout, few retries).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ContextDep, CurrentAdmin, CurrentCaller, CurrentPassenger, UowDep
from api.errors import error_responses
from api.schemas import Page
from domain.payments import PaymentKind, PaymentStatus, RefundStatus
from domain.usecases import payments as use
from domain.usecases.ports import Card

router = APIRouter(
    prefix="/api/v1/payments", tags=["payments"], responses=error_responses(401, 403, 503)
)


class SetupIntentOut(BaseModel):
    """What the device needs to save a card with Stripe."""

    client_secret: str = Field(description="For Stripe's SDK on the device, to confirm the card.")
    setup_intent_id: str = Field(description="Stripe's SetupIntent (`seti_...`).")
    customer_id: str = Field(description="The passenger's Stripe customer (`cus_...`).")


class CardOut(BaseModel):
    """A saved card, as Stripe describes it: never its number."""

    id: str = Field(description="Stripe's PaymentMethod id (`pm_...`).")
    brand: str | None = Field(description="`visa`, `mastercard`, ...")
    last4: str | None = Field(description="The card number's last 4 digits.")
    exp_month: int | None = Field(description="Expiry month, 1 to 12.")
    exp_year: int | None = Field(description="Expiry year, four digits.")
    default: bool = Field(description="Card rides are paid with this card.")


class CardPage(Page[CardOut]):
    """The saved cards: always one page (a passenger keeps a handful)."""


def _card_out(card: Card) -> CardOut:
    return CardOut.model_validate(card, from_attributes=True)


@router.post("/setup-intent", response_model=SetupIntentOut, responses=error_responses(429))
def setup_intent(caller: CurrentPassenger, uow: UowDep, ctx: ContextDep) -> SetupIntentOut:
    """A client secret for the app to save a card with Stripe's SDK, for rides later
    (off-session). The card is attached to the passenger's customer when confirmed."""
    info = use.start_saving_card(uow, caller, ctx.fraud.cards_per_hour)
    return SetupIntentOut(
        client_secret=info.client_secret, setup_intent_id=info.id, customer_id=info.customer_id
    )


@router.get("/methods", response_model=CardPage)
def methods(caller: CurrentPassenger, uow: UowDep) -> CardPage:
    """The passenger's saved cards (brand, last 4 digits, expiry), the default marked."""
    cards = use.saved_cards(uow, caller)
    return CardPage(items=[_card_out(c) for c in cards], next_cursor=None)


@router.delete("/methods/{pm_id}", status_code=204, responses=error_responses(404))
def detach(pm_id: str, caller: CurrentPassenger, uow: UowDep) -> None:
    """Remove a saved card from the passenger's customer at Stripe."""
    use.remove_card(uow, caller, pm_id)


@router.post("/methods/{pm_id}/default", response_model=CardOut, responses=error_responses(404))
def make_default(pm_id: str, caller: CurrentPassenger, uow: UowDep) -> CardOut:
    """The card new card rides are paid with. Another user's card is a 404."""
    return _card_out(use.make_default_card(uow, caller, pm_id))


# --- payments of a ride, and refunds -----------------------------------------------------
class PaymentEarningsView(BaseModel):
    """A payment as the ride's driver sees it: what concerns their earnings."""

    id: uuid.UUID = Field(description="The payment's id.")
    ride_id: uuid.UUID = Field(description="Its ride.")
    kind: PaymentKind = Field(
        description="`authorization` (the hold at the request, captured at completion) or "
        "`extra_charge` (what the hold did not cover)."
    )
    status: PaymentStatus = Field(
        description="`pending` (not yet asked of Stripe), `requires_capture` (the hold "
        "stands), `requires_action` (3-D Secure on the device), `succeeded`, `canceled` (the "
        "hold released or lapsed), `failed`."
    )
    amount: int = Field(description="Minor units asked.")
    amount_received: int = Field(description="Minor units captured.")
    amount_refunded: int = Field(description="Minor units refunded so far.")
    currency: str = Field(description="ISO 4217, lower case.")
    created_at: datetime = Field(description="When it was made.")


class PaymentOut(PaymentEarningsView):
    """A payment as the passenger and admins see it."""

    risk_level: str | None = Field(
        description="Stripe's risk evaluation of the charge, when there is one."
    )
    failure_code: str | None = Field(
        description="Why the last attempt failed (Stripe's code), if it did."
    )


class PaymentListed(PaymentEarningsView):
    """A payment in a ride's list: the passenger and admins see every field; the ride's
    driver sees what concerns their earnings, without `risk_level` and `failure_code`."""

    risk_level: str | None = Field(
        default=None,
        description="Stripe's risk evaluation of the charge; left out in the driver's view.",
    )
    failure_code: str | None = Field(
        default=None,
        description="Why the last attempt failed (Stripe's code); left out in the driver's view.",
    )


class PaymentPage(Page[PaymentListed]):
    """A ride's payments, oldest first: always one page (a ride has a few)."""


class RefundIn(BaseModel):
    """A full or partial refund to make."""

    amount: int | None = Field(default=None, gt=0, description="minor units; default: all")
    reason: str = Field(
        description="Why (kept with the refund, for ops and the ledger).",
        min_length=1,
        max_length=500,
    )


class RefundOut(BaseModel):
    """A refund and where it is."""

    id: uuid.UUID = Field(description="The refund's id.")
    payment_id: uuid.UUID = Field(description="The payment refunded.")
    amount: int = Field(description="Minor units.")
    currency: str = Field(description="ISO 4217, lower case.")
    reason: str = Field(description="Why.")
    status: RefundStatus = Field(
        description="`pending` until Stripe answers, then `succeeded` or `failed`."
    )
    created_at: datetime = Field(description="When it was asked for.")


@router.get(
    "",
    response_model=PaymentPage,
    response_model_exclude_unset=True,
    responses=error_responses(404),
)
def ride_payments(
    ride_id: Annotated[uuid.UUID, Query(description="The ride.")],
    caller: CurrentCaller,
    uow: UowDep,
) -> PaymentPage:
    """The payments of a ride (its participants and admins), with refunded amounts. The
    ride's driver sees what concerns their earnings, not the rider's card risk or
    failure codes (those fields are left out)."""
    found = use.ride_payments(uow, caller, ride_id)
    if found.full_view:
        items = [PaymentListed.model_validate(p, from_attributes=True) for p in found.items]
    else:  # only the fields the driver may see are set: the others are left out
        items = [
            PaymentListed.model_construct(
                **PaymentEarningsView.model_validate(p, from_attributes=True).model_dump()
            )
            for p in found.items
        ]
    return PaymentPage(items=items, next_cursor=None)


@router.post(
    "/{payment_id}/refunds",
    status_code=201,
    response_model=RefundOut,
    responses=error_responses(404, 409),
)
def refund(payment_id: uuid.UUID, body: RefundIn, caller: CurrentAdmin, uow: UowDep) -> Any:
    """A full or partial refund, never more than what was captured and not yet refunded.
    Stripe is asked by a worker; the refund's status follows."""
    return use.request_refund(uow, caller, payment_id, body.amount, body.reason)


# --- on-device flows (3-D Secure, fixing a failed payment) ---------------------------------
class IntentIn(BaseModel):
    """The ride whose payment the device must act on."""

    ride_id: uuid.UUID = Field(description="The ride whose payment needs the passenger.")


class IntentOut(BaseModel):
    """A ride's PaymentIntent, for the device to act on."""

    id: str = Field(description="Stripe's PaymentIntent (`pi_...`).")
    payment_id: uuid.UUID = Field(description="Our payment it belongs to.")
    client_secret: str | None = Field(
        description="For Stripe's SDK on the device (3-D Secure, another card)."
    )
    status: str = Field(description="Stripe's status of it.")
    amount: int = Field(description="Minor units.")
    currency: str = Field(description="ISO 4217, lower case.")


@router.post("/intent", response_model=IntentOut, responses=error_responses(404, 409))
def ride_intent(body: IntentIn, caller: CurrentPassenger, uow: UowDep) -> IntentOut:
    """The ride's PaymentIntent, with the client secret the app needs to authenticate
    (3-D Secure) or to pay with another card."""
    payment, intent = use.device_intent(uow, caller, body.ride_id)
    return IntentOut(payment_id=payment.id, **asdict(intent))


@router.post(
    "/{payment_id}/confirm", response_model=PaymentOut, responses=error_responses(404, 409)
)
def confirm(payment_id: uuid.UUID, caller: CurrentPassenger, uow: UowDep, ctx: ContextDep) -> Any:
    """After the device authenticated (or attached a new card): confirm what still needs
    confirming and take Stripe's state; a payment that succeeds clears the balance."""
    return use.confirm_on_device(uow, ctx, caller, payment_id)
