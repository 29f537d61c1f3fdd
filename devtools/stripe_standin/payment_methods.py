"""PaymentMethods: Stripe's test ids, attach/detach, listing a customer's cards, card errors."""

from __future__ import annotations

import time
from typing import Any

from devtools.stripe_standin.cards import Card, Decline, card_for_number, card_for_test_id
from devtools.stripe_standin.errors import StripeError, invalid, no_such
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.params import Params, apply_metadata
from devtools.stripe_standin.state import Obj, State, new_id, now, previous_attributes

_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def _billing_details(p: Params | None, current: dict[str, Any] | None = None) -> dict[str, Any]:
    details: dict[str, Any] = current or {
        "address": {k: None for k in _ADDRESS_KEYS},
        "email": None,
        "name": None,
        "phone": None,
        "tax_id": None,
    }
    if p is None:
        return details
    p.check(["address", "email", "name", "phone", "tax_id"])
    for key in ("email", "name", "phone", "tax_id"):
        if p.has(key):
            details[key] = p.string(key)
    address = p.mapping("address")
    if address is not None:
        address.check(_ADDRESS_KEYS)
        for key in _ADDRESS_KEYS:
            if address.has(key):
                details["address"][key] = address.string(key)
    return details


def new_payment_method(
    state: State,
    card: Card,
    *,
    billing_details: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    year = time.gmtime().tm_year
    pm: Obj = {
        "id": new_id("pm_"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": billing_details or _billing_details(None),
        "card": {
            "brand": card.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": card.country,
            "display_brand": card.brand,
            "exp_month": 12,
            "exp_year": year + 3,
            "fingerprint": card.fingerprint,
            "funding": card.funding,
            "generated_from": None,
            "last4": card.last4,
            "networks": {"available": [card.brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now(),
        "customer": None,
        "livemode": False,
        "metadata": metadata or {},
        "radar_options": {},
        "type": "card",
    }
    return state.add(pm, card=card, consumed=False, setup_off_session=card.auth == "on_session")


def resolve(state: State, ident: str, *, param: str = "payment_method", status: int = 400) -> Obj:
    """A PaymentMethod by id; Stripe's test ids (`pm_card_visa`) create a new one each time."""
    card = card_for_test_id(ident)
    if card is not None:
        return new_payment_method(state, card)
    pm = state.find(ident, "payment_method")
    if pm is None:
        raise no_such("PaymentMethod", ident, param=param, status=status)
    return pm


def card_of(state: State, pm: Obj) -> Card:
    card = state.secret(pm["id"]).get("card")
    return card if isinstance(card, Card) else card_for_number("4242424242424242")


def check_usable(
    state: State, pm: Obj, customer: str | None, *, param: str = "payment_method"
) -> None:
    """Stripe's reuse rules for a PaymentMethod in an intent for `customer`."""
    owner = pm.get("customer")
    if owner and customer and owner != customer:
        raise invalid(
            f"The provided PaymentMethod ({pm['id']}) is attached to another Customer. "
            "Use a PaymentMethod attached to this PaymentIntent's Customer.",
            param=param,
        )
    if owner and not customer:
        raise invalid(
            f"The provided PaymentMethod ({pm['id']}) is attached to a Customer: also pass "
            "that Customer's id in `customer` to use it.",
            param="customer",
        )
    if not owner and state.secret(pm["id"]).get("consumed"):
        raise invalid(
            "The provided PaymentMethod was previously used with a PaymentIntent without "
            "Customer attachment, shared with a connected account without Customer attachment, "
            "or was detached from a Customer. It may not be used again. To use a PaymentMethod "
            "multiple times, you must attach it to a Customer first.",
            param=param,
        )


def attach(state: State, pm: Obj, customer: Obj) -> Obj:
    before = dict(pm)
    pm["customer"] = customer["id"]
    state.emit("payment_method.attached", pm, previous_attributes(before, pm))
    return pm


def decline_error(
    decline: Decline,
    state: State,
    *,
    pm: Obj,
    charge: Obj | None = None,
    payment_intent: Obj | None = None,
    setup_intent: Obj | None = None,
) -> StripeError:
    extra: dict[str, Any] = {"decline_code": decline.decline_code}
    if charge is not None:
        extra["charge"] = charge["id"]
    extra["payment_method"] = state.export(pm)
    if payment_intent is not None:
        extra["payment_intent"] = state.export(payment_intent)
    if setup_intent is not None:
        extra["setup_intent"] = state.export(setup_intent)
    return StripeError(
        402,
        decline.message,
        type_="card_error",
        code=decline.code,
        param=decline.param,
        extra=extra,
    )


def last_error(
    decline: Decline, state: State, pm: Obj, charge: Obj | None = None
) -> dict[str, Any]:
    """`last_payment_error` / `last_setup_error`: the card error, with the PaymentMethod."""
    body = decline_error(decline, state, pm=pm, charge=charge).body()["error"]
    return body


# routes ----------------------------------------------------------------------

_CREATE = {"type", "card", "billing_details", "metadata", "allow_redisplay", "customer"}


def _card_error(message: str, code: str, param: str) -> StripeError:
    return StripeError(402, message, type_="card_error", code=code, param=param)


def _card_from_details(card_params: Params) -> Card:
    """What Stripe.js's card Element sends with the publishable key: the number itself,
    checked as Stripe checks it before any bank sees it."""
    card_params.check(["number", "exp_month", "exp_year", "cvc"])
    number = "".join((card_params.string("number", required=True) or "").split())
    digits = [int(c) for c in number] if number.isdigit() else []
    luhn = sum(
        d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits[::-1])
    )
    if not 12 <= len(digits) <= 19 or luhn % 10:
        raise _card_error("Your card number is incorrect.", "incorrect_number", "number")
    month = card_params.integer("exp_month", required=True) or 0
    year = card_params.integer("exp_year", required=True) or 0
    year = year + 2000 if year < 100 else year
    if not 1 <= month <= 12:
        raise _card_error(
            "Your card's expiration month is invalid.", "invalid_expiry_month", "exp_month"
        )
    today = time.gmtime()
    if year < today.tm_year or (year == today.tm_year and month < today.tm_mon):
        raise _card_error(
            "Your card's expiration year is invalid.", "invalid_expiry_year", "exp_year"
        )
    cvc = card_params.string("cvc") or ""
    if cvc and not (cvc.isdigit() and 3 <= len(cvc) <= 4):
        raise _card_error("Your card's security code is invalid.", "invalid_cvc", "cvc")
    return card_for_number(number)


@route("POST", "/v1/payment_methods", publishable=True)
def create_payment_method(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_CREATE)
    p.choice("type", ["card"], required=True)
    card_params = p.mapping("card")
    if card_params is None:
        raise invalid("Missing required param: card.", param="card", code="parameter_missing")
    if ctx.publishable and card_params.has("number"):
        return new_payment_method(
            ctx.state,
            _card_from_details(card_params),
            billing_details=_billing_details(p.mapping("billing_details")),
            metadata=apply_metadata({}, p.metadata()),
        )
    if ctx.publishable and (p.has("customer") or p.has("metadata")):
        raise invalid("This parameter cannot be set with a publishable key.", param="customer")
    if card_params.has("number"):
        raise invalid(
            "Sending credit card numbers directly to the Stripe API is generally unsafe. We "
            "suggest you use test tokens that map to the test card you are using, see "
            "https://stripe.com/docs/testing.",
            param="card[number]",
        )
    card_params.check(["token"])
    token = card_params.string("token", required=True) or ""
    card = card_for_test_id(token)
    if card is None:
        raise no_such("token", token, param="card[token]", status=400)
    pm = new_payment_method(
        ctx.state,
        card,
        billing_details=_billing_details(p.mapping("billing_details")),
        metadata=apply_metadata({}, p.metadata()),
    )
    return pm


@route("GET", "/v1/payment_methods/{id}")
def retrieve_payment_method(ctx: Ctx) -> Obj:
    return resolve(ctx.state, ctx.arg("id"), param="id", status=404)


@route("POST", "/v1/payment_methods/{id}")
def update_payment_method(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["billing_details", "metadata", "allow_redisplay", "card"])
    pm = ctx.state.get(ctx.arg("id"), "payment_method", label="PaymentMethod")
    before = {k: v for k, v in pm.items()}
    if p.has("billing_details"):
        pm["billing_details"] = _billing_details(
            p.mapping("billing_details"), pm["billing_details"]
        )
    pm["metadata"] = apply_metadata(pm["metadata"], p.metadata())
    if p.has("allow_redisplay"):
        pm["allow_redisplay"] = p.choice("allow_redisplay", ["always", "limited", "unspecified"])
    ctx.state.emit("payment_method.updated", pm, previous_attributes(before, pm))
    return pm


@route("POST", "/v1/payment_methods/{id}/attach")
def attach_payment_method(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["customer", "customer_account"])
    state = ctx.state
    customer_id = p.string("customer", required=True) or ""
    pm = resolve(state, ctx.arg("id"), param="id", status=404)
    customer = state.get(customer_id, "customer", param="customer", status=400)
    if pm.get("customer"):
        if pm["customer"] == customer_id:
            return pm
        raise invalid(
            "The payment method you provided has already been attached to a customer.",
            code="payment_method_unexpected_state",
        )
    if state.secret(pm["id"]).get("consumed"):
        check_usable(state, pm, customer_id, param="id")
    card = card_of(state, pm)
    if card.decline is not None and card.decline_on_attach:
        raise decline_error(card.decline, state, pm=pm)
    return attach(state, pm, customer)


@route("POST", "/v1/payment_methods/{id}/detach")
def detach_payment_method(ctx: Ctx) -> Obj:
    ctx.params.check([])
    state = ctx.state
    pm = state.get(ctx.arg("id"), "payment_method", label="PaymentMethod")
    detach(state, pm)
    return pm


def detach(state: State, pm: Obj) -> None:
    owner = pm.get("customer")
    if not owner:
        raise invalid(
            "The payment method you provided is not attached to a customer so detachment is "
            "impossible.",
            code="payment_method_unexpected_state",
        )
    before = dict(pm)
    pm["customer"] = None
    state.secret(pm["id"])["consumed"] = True
    customer = state.find(owner, "customer")
    if customer is not None:
        settings = customer.get("invoice_settings") or {}
        if settings.get("default_payment_method") == pm["id"]:
            settings["default_payment_method"] = None
    state.emit("payment_method.detached", pm, previous_attributes(before, pm))


_LIST = {
    "customer",
    "customer_account",
    "type",
    "limit",
    "starting_after",
    "ending_before",
    "allow_redisplay",
}


@route("GET", "/v1/payment_methods")
def list_payment_methods(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_LIST)
    customer = p.string("customer")
    if customer:
        ctx.state.get(customer, "customer", param="customer", status=400)
    return _list(ctx, customer, p, "/v1/payment_methods")


@route("GET", "/v1/customers/{id}/payment_methods")
def list_customer_payment_methods(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_LIST - {"customer", "customer_account"})
    customer = ctx.state.get(ctx.arg("id"), "customer")
    return _list(ctx, customer["id"], p, f"/v1/customers/{customer['id']}/payment_methods")


@route("GET", "/v1/customers/{customer}/payment_methods/{id}")
def retrieve_customer_payment_method(ctx: Ctx) -> Obj:
    ctx.params.check([])
    customer = ctx.state.get(ctx.arg("customer"), "customer")
    pm = ctx.state.find(ctx.arg("id"), "payment_method")
    if pm is None or pm.get("customer") != customer["id"]:
        raise no_such("PaymentMethod", ctx.arg("id"))
    return pm


def _list(ctx: Ctx, customer: str | None, p: Params, url: str) -> Obj:
    kind = p.string("type")
    items = ctx.state.all(
        "payment_method",
        lambda pm: (
            (customer is None or pm.get("customer") == customer)
            and (customer is not None or pm.get("customer") is not None)
            and (kind is None or pm["type"] == kind)
        ),
    )
    return ctx.state.page(items, p, url)
