"""Payment use cases: cash collected, a ride's payments, refunds, and the rider's cards.

Money moves only in workers; what happens here is recording (cash, a refund to make)
and the few calls whose answer is the response (a SetupIntent's client secret, the
cards list, confirming on the device after 3-D Secure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.access import Access, Actor, Caller, ride_access
from domain.errors import Conflict, IllegalTransition, NotFound, RateLimited, Unprocessable
from domain.jobs import Job
from domain.ledger import cash_collected_entry
from domain.money import Money
from domain.payments import OWED, PaymentKind, refund_amount
from domain.rides import RidePayment, RideStatus
from domain.usecases import card_payments
from domain.usecases.context import Context
from domain.usecases.ports import Card, IntentInfo, SetupIntentInfo, UnitOfWork


@dataclass(frozen=True, slots=True)
class CashRecord:
    ride_id: UUID
    amount: int
    currency: str
    fare: int
    difference: int  # collected minus fare: positive = overpaid, negative = short


def collect_cash(
    uow: UnitOfWork, caller: Caller, ride_id: UUID, amount: int
) -> tuple[CashRecord, bool]:
    """Record what the driver took for a completed cash ride, once. Returns (record, new).

    More or less than the fare is recorded as it was, never silently fixed: the rider's
    balance shows the difference. The same amount again is a replay; another is a 409.
    """
    ride = uow.rides.get(ride_id, for_update=True)
    # the route is the driver's: participant access here means the ride's own driver
    if ride is None or ride_access(caller, ride.passenger_id, ride.driver_id) < (
        Access.PARTICIPANT
    ):
        raise NotFound("ride not found", code="ride_not_found")
    if ride.payment != RidePayment.CASH:
        raise Conflict("this ride is paid by card", code="not_a_cash_ride")
    if ride.status != RideStatus.COMPLETED or ride.fare_amount is None:
        raise IllegalTransition(f"cash is collected after completion; the ride is {ride.status}")
    if amount < 0 or amount > max(10 * ride.fare_amount, 100_000):
        raise Unprocessable("amount is not a plausible cash payment", code="implausible_amount")
    record = CashRecord(ride.id, amount, ride.currency, ride.fare_amount, amount - ride.fare_amount)
    key = f"ride:{ride.id}:cash"
    existing = uow.ledger.entry_amount(key)
    if existing is not None:
        if existing != amount:
            raise Conflict(
                f"cash of {existing} was already recorded for this ride",
                code="cash_already_recorded",
            )
        return record, False
    assert ride.driver_id is not None
    uow.ledger.post(
        cash_collected_entry(
            ride.id, ride.passenger_id, ride.driver_id, Money(amount, ride.currency)
        )
    )
    return record, True


@dataclass(frozen=True, slots=True)
class RidePayments:
    """A ride's payments, and how much of them the caller may see: the passenger and
    admins everything; the ride's driver what concerns their earnings (no card risk,
    no failure codes)."""

    items: list[Any]
    full_view: bool


def ride_payments(uow: UnitOfWork, caller: Caller, ride_id: UUID) -> RidePayments:
    ride = uow.rides.get(ride_id)
    if ride is None or ride_access(caller, ride.passenger_id, ride.driver_id) < (
        Access.PARTICIPANT
    ):
        raise NotFound("ride not found", code="ride_not_found")
    return RidePayments(uow.payments.of_ride(ride_id), full_view=caller.role is not Actor.DRIVER)


def request_refund(
    uow: UnitOfWork, admin: Caller, payment_id: UUID, amount: int | None, reason: str
) -> Any:
    """A full or partial refund, never more than captured and not yet refunded; a worker
    asks Stripe for it."""
    payment = uow.payments.get(payment_id, for_update=True)
    if payment is None:
        raise NotFound("payment not found", code="payment_not_found")
    amount = refund_amount(
        amount, payment.amount_received, uow.payments.refunds_not_failed(payment.id)
    )
    refund = uow.payments.add_refund(payment, amount, reason, admin.id)
    uow.jobs.enqueue(Job.REFUND, refund_id=str(refund.id))
    return refund


def payout_account_link(uow: UnitOfWork, caller: Caller) -> str:
    """Where the driver sets up the account their statements are paid to."""
    return uow.payout_accounts.onboarding_link(caller.id)


# --- the rider's cards (calls whose answer is the response) ---------------------------------
def start_saving_card(uow: UnitOfWork, caller: Caller, cards_per_hour: int) -> SetupIntentInfo:
    """A SetupIntent client secret for the app to save a card with Stripe's SDK."""
    wait = uow.velocity.hit("cards", caller.id, cards_per_hour, 3600)
    if wait:
        raise RateLimited("too many cards added this hour", retry_after=wait, code="too_many_cards")
    return uow.cards.setup_intent(uow.cards.customer(caller.id), caller.id)


def saved_cards(uow: UnitOfWork, caller: Caller) -> list[Card]:
    return uow.cards.saved(uow.cards.customer(caller.id))


def remove_card(uow: UnitOfWork, caller: Caller, payment_method_id: str) -> None:
    customer = uow.cards.customer(caller.id)
    uow.cards.owned(customer, payment_method_id)
    uow.cards.detach(customer, payment_method_id)


def make_default_card(uow: UnitOfWork, caller: Caller, payment_method_id: str) -> Card:
    customer = uow.cards.customer(caller.id)
    card = uow.cards.owned(customer, payment_method_id)
    uow.cards.make_default(customer, payment_method_id)
    return Card(card.id, card.brand, card.last4, card.exp_month, card.exp_year, default=True)


def _needing_device(payments: list[Any]) -> Any | None:
    """The ride's payment the device should act on: what is owed first, else the hold."""
    for kind in (PaymentKind.EXTRA_CHARGE, PaymentKind.AUTHORIZATION):
        for p in payments:
            if p.kind == kind and p.stripe_payment_intent_id:
                if kind == PaymentKind.AUTHORIZATION or p.status in OWED:
                    return p
    return None


def device_intent(uow: UnitOfWork, caller: Caller, ride_id: UUID) -> tuple[Any, IntentInfo]:
    """The ride's PaymentIntent the app must act on (3-D Secure, another card)."""
    mine = [p for p in uow.payments.of_ride(ride_id) if p.passenger_id == caller.id]
    if not mine:
        raise NotFound("no card payment for this ride", code="payment_not_found")
    payment = _needing_device(mine)
    if payment is None:
        raise Conflict("this ride's payment never reached Stripe", code="no_intent")
    return payment, uow.cards.intent(payment.stripe_payment_intent_id)


def confirm_on_device(uow: UnitOfWork, ctx: Context, caller: Caller, payment_id: UUID) -> Any:
    """After the device authenticated (or attached a new card): confirm what still needs
    confirming and take Stripe's state; a payment that succeeds clears the balance."""
    payment = uow.payments.get(payment_id, for_update=True)
    if payment is None or payment.passenger_id != caller.id:
        raise NotFound("payment not found", code="payment_not_found")
    if payment.stripe_payment_intent_id is None:
        raise Conflict("this payment never reached Stripe", code="no_intent")
    intent = uow.cards.confirm(payment.stripe_payment_intent_id, payment.id)
    card_payments.take_intent(uow, ctx, payment, intent)
    return payment
