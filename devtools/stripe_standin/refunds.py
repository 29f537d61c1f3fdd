"""Refunds: never more than was captured minus what was already refunded.

- `amount` defaults to what remains refundable; more than that is a 400 on `amount`
  ("Refund amount ($X) is greater than ..."); nothing left is 400 `charge_already_refunded`.
- An uncaptured payment is not refunded but canceled (Stripe answers 400).
- Card refunds succeed at once (`refund.created`, `charge.refunded`); a payment made with
  `pm_card_refundFail` has its refund turn `failed` a moment later (`refund.updated`,
  `refund.failed`, `charge.refund.updated`), as Stripe's test card does.
"""

from __future__ import annotations

import asyncio
import contextvars

from devtools.stripe_standin import payment_methods
from devtools.stripe_standin.errors import invalid
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.params import Params, apply_metadata
from devtools.stripe_standin.payment_intents import balance_transaction, money
from devtools.stripe_standin.state import Obj, State, new_id, now, previous_attributes

_CREATE = {
    "amount",
    "charge",
    "currency",
    "customer",
    "instructions_email",
    "metadata",
    "origin",
    "payment_intent",
    "reason",
    "refund_application_fee",
    "reverse_transfer",
}
_REASONS = ["duplicate", "fraudulent", "requested_by_customer"]


def _charge_to_refund(state: State, p: Params) -> Obj:
    charge_id = p.string("charge")
    intent_id = p.string("payment_intent")
    if not charge_id and not intent_id:
        raise invalid(
            "One of the following params should be provided for this request: payment_intent "
            "or charge.",
            code="parameter_missing",
        )
    if intent_id:
        pi = state.get(intent_id, "payment_intent", param="payment_intent", status=400)
        if pi["status"] == "requires_capture":
            raise invalid(
                f"This PaymentIntent ({pi['id']}) has not been captured: you must cancel the "
                "PaymentIntent to reverse the authorization instead of refunding it.",
                param="payment_intent",
            )
        if pi["status"] != "succeeded" or not pi["latest_charge"]:
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = state.get(pi["latest_charge"], "charge")
        if charge_id and charge_id != charge["id"]:
            raise invalid(
                f"The charge {charge_id} does not belong to the PaymentIntent {pi['id']}.",
                param="charge",
            )
        return charge
    assert charge_id is not None
    charge = state.get(charge_id, "charge", param="charge", status=400)
    if charge["status"] != "succeeded":
        raise invalid(f"Charge {charge['id']} has failed and cannot be refunded.", param="charge")
    if not charge["captured"]:
        raise invalid(
            f"This uncaptured Charge was created by a PaymentIntent ({charge['payment_intent']}). "
            "You must cancel the PaymentIntent to reverse the authorization instead of "
            "refunding the Charge directly.",
            param="charge",
        )
    return charge


@route("POST", "/v1/refunds")
def create_refund(ctx: Ctx) -> Obj:
    ctx.params.check(_CREATE)
    return _create(ctx, _charge_to_refund(ctx.state, ctx.params))


@route("POST", "/v1/charges/{id}/refunds")
def create_charge_refund(ctx: Ctx) -> Obj:
    ctx.params.check(_CREATE - {"charge", "payment_intent"})
    ctx.params.data["charge"] = ctx.arg("id")
    return _create(ctx, _charge_to_refund(ctx.state, ctx.params))


def _create(ctx: Ctx, charge: Obj) -> Obj:
    state = ctx.state
    p = ctx.params
    refundable = charge["amount_captured"] - charge["amount_refunded"]
    amount = p.integer("amount", minimum=1)
    reason = p.choice("reason", _REASONS)
    metadata = apply_metadata({}, p.metadata())
    if refundable <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    if amount is None:
        amount = refundable
    if amount > refundable:
        currency = charge["currency"]
        if charge["amount_refunded"]:
            message = (
                f"Refund amount ({money(amount, currency)}) is greater than unrefunded amount "
                f"on charge ({money(refundable, currency)})"
            )
        else:
            message = (
                f"Refund amount ({money(amount, currency)}) is greater than charge amount "
                f"({money(charge['amount_captured'], currency)})"
            )
        raise invalid(message, param="amount")
    reverse_transfer = p.boolean("reverse_transfer") or False
    if reverse_transfer and not charge.get("transfer"):
        raise invalid(
            "This charge has no transfer to reverse (reverse_transfer applies to destination "
            "charges).",
            param="reverse_transfer",
        )
    refund: Obj = {
        "id": new_id("re_"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge["id"],
        "created": now(),
        "currency": charge["currency"],
        "destination_details": {
            "card": {
                "reference": new_id("", 23),
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "metadata": metadata,
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
    if p.has("instructions_email"):
        refund["instructions_email"] = p.string("instructions_email")
    state.add(refund)
    refund["balance_transaction"] = balance_transaction(
        state, -amount, charge["currency"], refund["id"], "refund"
    )["id"]
    if reverse_transfer:
        from devtools.stripe_standin.connect import reverse_for_refund

        refund["transfer_reversal"] = reverse_for_refund(state, charge, amount)
    before = dict(charge)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    state.emit("refund.created", refund)
    state.emit("charge.refunded", charge, previous_attributes(before, charge))
    pm = state.find(charge["payment_method"], "payment_method")
    if pm is not None and payment_methods.card_of(state, pm).refund_fails:
        loop = asyncio.get_running_loop()
        # a fresh context: the failure's events belong to no API request
        loop.call_later(
            state.settings.refund_failure_delay_s,
            _fail_refund,
            state,
            refund["id"],
            context=contextvars.Context(),
        )
    return refund


def _fail_refund(state: State, refund_id: str) -> None:
    refund = state.find(refund_id, "refund")
    if refund is None or refund["status"] != "succeeded":
        return
    charge = state.get(refund["charge"], "charge")
    before = dict(refund)
    refund["status"] = "failed"
    refund["failure_reason"] = "expired_or_canceled_card"
    refund["failure_balance_transaction"] = balance_transaction(
        state, refund["amount"], refund["currency"], refund["id"], "refund_failure"
    )["id"]
    charge["amount_refunded"] -= refund["amount"]
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"] > 0
    previous = previous_attributes(before, refund)
    state.emit("refund.updated", refund, previous)
    state.emit("refund.failed", refund, previous)
    state.emit("charge.refund.updated", refund, previous)


@route("GET", "/v1/refunds/{id}")
def retrieve_refund(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "refund")


@route("POST", "/v1/refunds/{id}")
def update_refund(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["metadata"])
    state = ctx.state
    refund = state.get(ctx.arg("id"), "refund")
    before = dict(refund)
    refund["metadata"] = apply_metadata(refund["metadata"], p.metadata())
    previous = previous_attributes(before, refund)
    if previous:
        state.emit("refund.updated", refund, previous)
        state.emit("charge.refund.updated", refund, previous)
    return refund


@route("POST", "/v1/refunds/{id}/cancel")
def cancel_refund(ctx: Ctx) -> Obj:
    ctx.params.check([])
    refund = ctx.state.get(ctx.arg("id"), "refund")
    raise invalid(
        f"You can only cancel refunds with a status of requires_action; this refund "
        f"({refund['id']}) has a status of {refund['status']}.",
    )


@route("GET", "/v1/refunds")
def list_refunds(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["charge", "payment_intent", "created", "limit", "starting_after", "ending_before"])
    charge = p.string("charge")
    intent = p.string("payment_intent")
    items = ctx.state.all(
        "refund",
        lambda r: (
            (charge is None or r["charge"] == charge)
            and (intent is None or r["payment_intent"] == intent)
        ),
    )
    return ctx.state.page(items, p, "/v1/refunds")


@route("GET", "/v1/charges/{id}/refunds")
def list_charge_refunds(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["limit", "starting_after", "ending_before"])
    charge = ctx.state.get(ctx.arg("id"), "charge")
    items = ctx.state.all("refund", lambda r: r["charge"] == charge["id"])
    return ctx.state.page(items, p, f"/v1/charges/{charge['id']}/refunds")
