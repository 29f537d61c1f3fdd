"""PaymentIntents and their charges, as Stripe's documentation (API 2025-03-31.basil on) says.

- `capture_method=manual`: `requires_capture` with `amount_capturable`; capture with
  `amount_to_capture` makes it `succeeded` with `amount_received` the captured amount and
  `amount_capturable` 0; the rest is released, no Refund created (basil removed that).
- Declines happen when the card is charged: HTTP 402 `card_error` (with `decline_code`,
  `charge`, `payment_intent`, `payment_method`), the PaymentIntent back in
  `requires_payment_method` with `last_payment_error`, a failed charge as `latest_charge`.
- A card that wants 3-D Secure: on-session, `requires_action` with `next_action`;
  off-session, 402 `authentication_required` and `requires_payment_method` (the customer
  must come back on-session).
- `latest_charge` is an id unless `expand[]=latest_charge`.
"""

from __future__ import annotations

from typing import Any, NoReturn

from devtools.stripe_standin import payment_methods
from devtools.stripe_standin.cards import AUTH_REQUIRED, Card, Decline
from devtools.stripe_standin.errors import StripeError, invalid, no_such
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.intents import (
    next_action,
    payment_method_config,
    refuse_payment_method_types,
    require_return_url,
)
from devtools.stripe_standin.params import Params, apply_metadata
from devtools.stripe_standin.state import Obj, State, new_id, now, previous_attributes

# minimum charge amounts (docs.stripe.com/currencies#minimum-and-maximum-charge-amounts)
_MINIMUM = {
    "usd": 50,
    "aed": 200,
    "aud": 50,
    "bgn": 100,
    "brl": 50,
    "cad": 50,
    "chf": 50,
    "czk": 1500,
    "dkk": 250,
    "eur": 50,
    "gbp": 30,
    "hkd": 400,
    "huf": 17500,
    "inr": 50,
    "jpy": 50,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "nzd": 50,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "sgd": 50,
    "thb": 1000,
}
_ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
_SYMBOL = {"usd": "$", "eur": "€", "gbp": "£", "aud": "A$", "cad": "CA$", "jpy": "¥"}
_MAXIMUM = 99_999_999

_CREATE = {
    "allowed_payment_method_types",
    "amount",
    "amount_details",
    "application_fee_amount",
    "automatic_payment_methods",
    "capture_method",
    "confirm",
    "confirmation_method",
    "confirmation_token",
    "currency",
    "customer",
    "customer_account",
    "description",
    "error_on_requires_action",
    "excluded_payment_method_types",
    "hooks",
    "mandate",
    "mandate_data",
    "metadata",
    "off_session",
    "on_behalf_of",
    "payment_details",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "radar_options",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
    "use_stripe_sdk",
}
_CONFIRM = {
    "allowed_payment_method_types",
    "amount_details",
    "amount_to_confirm",
    "capture_method",
    "confirmation_token",
    "error_on_requires_action",
    "excluded_payment_method_types",
    "mandate",
    "mandate_data",
    "off_session",
    "payment_details",
    "payment_method",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "radar_options",
    "receipt_email",
    "return_url",
    "setup_future_usage",
    "shipping",
    "use_stripe_sdk",
}
_CAPTURE = {
    "amount_details",
    "amount_to_capture",
    "application_fee_amount",
    "final_capture",
    "metadata",
    "payment_details",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
}
_UPDATE = {
    "allowed_payment_method_types",
    "amount",
    "amount_details",
    "application_fee_amount",
    "capture_method",
    "currency",
    "customer",
    "customer_account",
    "description",
    "excluded_payment_method_types",
    "hooks",
    "metadata",
    "payment_details",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "receipt_email",
    "setup_future_usage",
    "shipping",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "transfer_data",
    "transfer_group",
}
_TYPE_PARAMS = (
    "payment_method_types",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
    "automatic_payment_methods",
)
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
_AUTH_WINDOW_S = 7 * 24 * 3600
_VISA_MIT_WINDOW_S = 4 * 24 * 3600 + 18 * 3600


def money(amount: int, currency: str) -> str:
    symbol = _SYMBOL.get(currency, "")
    if currency in _ZERO_DECIMAL:
        text = f"{amount:,}"
    else:
        text = f"{amount / 100:,.2f}"
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


def check_amount(amount: int, currency: str, param: str = "amount") -> None:
    minimum = _MINIMUM.get(currency, 50)
    if amount < minimum:
        raise invalid(
            f"Amount must be at least {money(minimum, currency)} {currency}",
            param=param,
            code="amount_too_small",
        )
    if amount > _MAXIMUM:
        raise invalid(
            f"Amount must be no more than {money(_MAXIMUM, currency)}",
            param=param,
            code="amount_too_large",
        )


def currency_param(p: Params, key: str = "currency", *, required: bool = True) -> str | None:
    value = p.string(key, required=required)
    if value is None:
        return None
    value = value.lower()
    if len(value) != 3 or not value.isalpha():
        raise invalid(
            f"Invalid currency: {value}. Stripe currently supports these currencies: "
            "usd, eur, gbp, ... (three-letter ISO codes).",
            param=key,
        )
    return value


def _descriptor(p: Params, key: str) -> str | None:
    value = p.string(key)
    if value is not None and len(value) > 22:
        raise invalid(f"The {key} parameter must be at most 22 characters.", param=key)
    return value


def _transfer_data(state: State, p: Params, amount: int) -> dict[str, Any] | None:
    data = p.mapping("transfer_data")
    if data is None:
        return None
    data.check(["destination", "amount"])
    destination = data.string("destination", required=True) or ""
    if state.find(destination, "account") is None:
        raise no_such("destination", destination, param="transfer_data[destination]", status=400)
    transfer_amount = data.integer("amount", minimum=0)
    if transfer_amount is not None and transfer_amount > amount:
        raise invalid(
            "The transfer amount must be less than or equal to the PaymentIntent amount.",
            param="transfer_data[amount]",
        )
    out: dict[str, Any] = {"destination": destination}
    if transfer_amount is not None:
        out["amount"] = transfer_amount
    return out


def _off_session(p: Params) -> bool | None:
    value = p.raw("off_session")
    if value in ("one_off", "recurring"):
        return True
    return p.boolean("off_session")


def _pm_param(state: State, p: Params) -> Obj | None:
    data = p.mapping("payment_method_data")
    if data is not None:
        data.check(["type", "card", "billing_details", "metadata", "allow_redisplay"])
        card = data.mapping("card")
        token = card.string("token") if card is not None else None
        if not token:
            raise invalid(
                "The stand-in creates cards from test tokens only: "
                "payment_method_data[card][token]=tok_visa.",
                param="payment_method_data[card][token]",
            )
        return payment_methods.resolve(state, token, param="payment_method_data[card][token]")
    if p.has("payment_method"):
        ident = p.string("payment_method")
        return payment_methods.resolve(state, ident) if ident else None
    return None


# create / retrieve / update / list -------------------------------------------


@route("POST", "/v1/payment_intents")
def create_payment_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_CREATE)
    state = ctx.state
    amount = p.integer("amount", required=True)
    assert amount is not None
    currency = currency_param(p) or "usd"
    check_amount(amount, currency)
    customer_id = p.string("customer")
    if customer_id:
        customer = state.get(customer_id, "customer", param="customer", status=400)
        if customer.get("deleted"):
            raise no_such("customer", customer_id, param="customer", status=400)
    capture_method = (
        p.choice("capture_method", ["automatic", "automatic_async", "manual"]) or "automatic_async"
    )
    confirmation_method = p.choice("confirmation_method", ["automatic", "manual"]) or "automatic"
    setup_future_usage = p.choice("setup_future_usage", ["off_session", "on_session"])
    confirm = p.boolean("confirm") or False
    off_session = _off_session(p)
    if off_session is not None and not confirm:
        raise invalid(
            "You passed `off_session`, but `confirm` was not set: `off_session` can only be "
            "used with `confirm=true`.",
            param="off_session",
        )
    if p.has("error_on_requires_action") and not confirm:
        raise invalid(
            "You can only pass `error_on_requires_action` when `confirm=true`.",
            param="error_on_requires_action",
        )
    return_url = p.string("return_url")
    if return_url and not confirm:
        raise invalid("You can only pass `return_url` when `confirm=true`.", param="return_url")
    config = payment_method_config(p)
    transfer_data = _transfer_data(state, p, amount)
    fee = p.integer("application_fee_amount", minimum=0)
    if fee is not None:
        if transfer_data is None and not ctx.request.headers.get("Stripe-Account"):
            raise invalid(
                "Can only apply an application_fee_amount when the PaymentIntent is attempting "
                "a direct payment (using an OAuth key or Stripe-Account header) or destination "
                "payment (using `transfer_data[destination]`).",
                param="application_fee_amount",
            )
        if fee > amount:
            raise invalid(
                "The application fee amount must be less than or equal to the PaymentIntent "
                "amount.",
                param="application_fee_amount",
            )
    description = p.string("description")
    statement_descriptor = _descriptor(p, "statement_descriptor")
    suffix = _descriptor(p, "statement_descriptor_suffix")
    metadata = apply_metadata({}, p.metadata())
    on_behalf_of = p.string("on_behalf_of")
    if on_behalf_of and state.find(on_behalf_of, "account") is None:
        raise no_such("account", on_behalf_of, param="on_behalf_of", status=400)
    pm = _pm_param(state, p)
    if pm is not None:
        payment_methods.check_usable(state, pm, customer_id)
    pi: Obj = {
        "id": new_id("pi_"),
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": fee,
        **config,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": capture_method,
        "client_secret": "",
        "confirmation_method": confirmation_method,
        "created": now(),
        "currency": currency,
        "customer": customer_id,
        "description": description,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": on_behalf_of,
        "payment_method": pm["id"] if pm else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "processing": None,
        "receipt_email": p.string("receipt_email"),
        "review": None,
        "setup_future_usage": setup_future_usage,
        "shipping": p.raw("shipping") if isinstance(p.raw("shipping"), dict) else None,
        "source": None,
        "statement_descriptor": statement_descriptor,
        "statement_descriptor_suffix": suffix,
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "transfer_data": transfer_data,
        "transfer_group": p.string("transfer_group"),
    }
    pi["client_secret"] = f"{pi['id']}_secret_{new_id('', 25)}"
    if confirm:
        if pm is None:
            raise _missing_payment_method(customer_id)
        require_return_url(pi, return_url, "Payment Intent")
    state.add(
        pi,
        off_session=bool(off_session),
        return_url=return_url,
        error_on_requires_action=bool(p.boolean("error_on_requires_action")),
    )
    state.emit("payment_intent.created", pi)
    if confirm:
        _attempt(ctx, pi)
    return pi


def _missing_payment_method(customer: str | None) -> StripeError:
    whom = f" with {customer}" if customer else ""
    return invalid(
        f"You cannot confirm this PaymentIntent because it's missing a payment method. To "
        f"confirm the PaymentIntent{whom}, specify a payment method attached to this customer "
        "along with the customer ID.",
        code="payment_intent_unexpected_state",
    )


@route("GET", "/v1/payment_intents/{id}", publishable=True)
def retrieve_payment_intent(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "payment_intent")


@route("POST", "/v1/payment_intents/{id}")
def update_payment_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_UPDATE)
    state = ctx.state
    pi = state.get(ctx.arg("id"), "payment_intent")
    before = dict(pi)
    always = {
        "description",
        "metadata",
        "receipt_email",
        "shipping",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_group",
    }
    restricted = [k for k in p.data if k not in always and k != "expand"]
    if restricted and pi["status"] not in _CONFIRMABLE:
        raise invalid(
            f"This PaymentIntent's {restricted[0]} could not be updated because it has a status "
            f"of {pi['status']}. You may only update the {restricted[0]} of a PaymentIntent with "
            "one of the following statuses: requires_payment_method, requires_confirmation, "
            "requires_action.",
            code="payment_intent_unexpected_state",
            param=restricted[0],
        )
    if p.has("amount"):
        amount = p.integer("amount", required=True)
        assert amount is not None
        check_amount(amount, pi["currency"])
        pi["amount"] = amount
    if p.has("currency"):
        pi["currency"] = currency_param(p)
    if p.has("customer"):
        customer_id = p.string("customer")
        if customer_id:
            state.get(customer_id, "customer", param="customer", status=400)
        pi["customer"] = customer_id
    if p.has("capture_method"):
        pi["capture_method"] = p.choice(
            "capture_method", ["automatic", "automatic_async", "manual"]
        )
    if p.has("setup_future_usage"):
        pi["setup_future_usage"] = p.choice("setup_future_usage", ["off_session", "on_session"])
    if any(p.has(k) for k in _TYPE_PARAMS):
        pi.update(payment_method_config(p))
    pm = _pm_param(state, p)
    if pm is not None:
        payment_methods.check_usable(state, pm, pi["customer"])
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
        pi["next_action"] = None
        state.secret(pi["id"]).pop("authenticated", None)
    if p.has("transfer_data"):
        pi["transfer_data"] = _transfer_data(state, p, pi["amount"])
    if p.has("application_fee_amount"):
        pi["application_fee_amount"] = p.integer("application_fee_amount", minimum=0)
    for key in ("description", "receipt_email", "transfer_group"):
        if p.has(key):
            pi[key] = p.string(key)
    for key in ("statement_descriptor", "statement_descriptor_suffix"):
        if p.has(key):
            pi[key] = _descriptor(p, key)
    pi["metadata"] = apply_metadata(pi["metadata"], p.metadata())
    previous = previous_attributes(before, pi)
    if previous:
        state.emit("payment_intent.updated", pi, previous)
    return pi


@route("GET", "/v1/payment_intents")
def list_payment_intents(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["customer", "customer_account", "created", "limit", "starting_after", "ending_before"])
    customer = p.string("customer")
    created = _created_filter(p)
    items = ctx.state.all(
        "payment_intent",
        lambda pi: (customer is None or pi["customer"] == customer) and created(pi),
    )
    return ctx.state.page(items, p, "/v1/payment_intents")


def _created_filter(p: Params) -> Any:
    created = p.raw("created")
    if created is None or created == "":
        return lambda obj: True
    if not isinstance(created, dict):
        exact = p.integer("created")
        return lambda obj: obj["created"] == exact
    c = Params(created, "created")
    c.check(["gt", "gte", "lt", "lte"])
    bounds = {k: c.integer(k) for k in ("gt", "gte", "lt", "lte")}

    def keep(obj: Obj) -> bool:
        t = obj["created"]
        return (
            (bounds["gt"] is None or t > bounds["gt"])
            and (bounds["gte"] is None or t >= bounds["gte"])
            and (bounds["lt"] is None or t < bounds["lt"])
            and (bounds["lte"] is None or t <= bounds["lte"])
        )

    return keep


# confirm ---------------------------------------------------------------------


@route("POST", "/v1/payment_intents/{id}/confirm", publishable=True)
def confirm_payment_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_CONFIRM)
    state = ctx.state
    pi = state.get(ctx.arg("id"), "payment_intent")
    if pi["status"] not in _CONFIRMABLE:
        raise invalid(
            f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}. "
            "Only a PaymentIntent with one of the following statuses may be confirmed: "
            "requires_payment_method, requires_confirmation, requires_action.",
            code="payment_intent_unexpected_state",
        )
    if ctx.publishable and pi["confirmation_method"] == "manual":
        raise invalid(
            "This PaymentIntent's confirmation_method is manual: confirm it with your secret key.",
            code="payment_intent_unexpected_state",
        )
    refuse_payment_method_types(p)
    excluded = p.strings("excluded_payment_method_types")
    pm = _pm_param(state, p)
    current = state.find(pi["payment_method"], "payment_method") if pm is None else pm
    if current is None:
        raise _missing_payment_method(pi["customer"])
    payment_methods.check_usable(state, current, pi["customer"])
    hidden = state.secret(pi["id"])
    return_url = p.string("return_url") or hidden.get("return_url")
    require_return_url(pi, return_url, "Payment Intent")
    capture_method = p.choice("capture_method", ["automatic", "automatic_async", "manual"])
    setup_future_usage = p.choice("setup_future_usage", ["off_session", "on_session"])
    off_session = _off_session(p)
    # everything is valid: apply
    if pm is not None and pm["id"] != pi["payment_method"]:
        hidden.pop("authenticated", None)
    pi["payment_method"] = current["id"]
    hidden["return_url"] = return_url
    hidden["off_session"] = bool(off_session)
    hidden["error_on_requires_action"] = bool(p.boolean("error_on_requires_action"))
    if capture_method:
        pi["capture_method"] = capture_method
    if setup_future_usage:
        pi["setup_future_usage"] = setup_future_usage
    if p.has("receipt_email"):
        pi["receipt_email"] = p.string("receipt_email")
    if excluded is not None:
        pi["excluded_payment_method_types"] = excluded
    _attempt(ctx, pi)
    return pi


def _needs_authentication(state: State, card: Card, pm: Obj, off_session: bool) -> bool:
    if card.auth == "always":
        return True
    if card.auth == "unless_setup":
        return not (off_session and state.secret(pm["id"]).get("setup_off_session"))
    if card.auth == "on_session":
        return not off_session
    return False


def _attempt(ctx: Ctx, pi: Obj) -> None:
    """Try the payment with the PaymentIntent's payment method (a confirmation)."""
    state = ctx.state
    hidden = state.secret(pi["id"])
    pm = state.get(pi["payment_method"], "payment_method", label="PaymentMethod")
    card = payment_methods.card_of(state, pm)
    off_session = bool(hidden.get("off_session"))
    authenticated = hidden.get("authenticated") == pm["id"]
    if not authenticated and _needs_authentication(state, card, pm, off_session):
        if off_session or hidden.get("error_on_requires_action"):
            _fail(state, pi, pm, card, AUTH_REQUIRED)
        pi["status"] = "requires_action"
        pi["next_action"] = next_action(pi, ctx.base_url, hidden.get("return_url"))
        pi["last_payment_error"] = None
        state.emit("payment_intent.requires_action", pi)
        return
    if card.decline is not None:
        _fail(state, pi, pm, card, card.decline)
    _succeed(state, pi, pm, card, authenticated=authenticated)


def _charge(
    state: State, pi: Obj, pm: Obj, card: Card, *, decline: Decline | None, authenticated: bool
) -> Obj:
    created = now()
    off_session = bool(state.secret(pi["id"]).get("off_session"))
    window = _VISA_MIT_WINDOW_S if card.brand == "visa" and off_session else _AUTH_WINDOW_S
    manual = pi["capture_method"] == "manual"
    if decline is None:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": card.risk_level,
            "risk_score": card.risk_score,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    else:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": decline.network_status,
            "reason": "highest_risk_level"
            if decline.outcome_type == "blocked"
            else decline.decline_code,
            "risk_level": decline.risk_level,
            "risk_score": card.risk_score if decline.risk_level == card.risk_level else 90,
            "seller_message": decline.seller_message,
            "type": decline.outcome_type,
        }
    charge: Obj = {
        "id": new_id("ch_"),
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": pi["application_fee_amount"],
        "balance_transaction": None,
        "billing_details": dict(pm["billing_details"]),
        "calculated_statement_descriptor": (
            "STRIPE STAND-IN"
            + (
                f"* {pi['statement_descriptor_suffix']}"
                if pi["statement_descriptor_suffix"]
                else ""
            )
        )[:22],
        "captured": False,
        "created": created,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": decline.code if decline else None,
        "failure_message": decline.message if decline else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": pi["on_behalf_of"],
        "outcome": outcome,
        "paid": decline is None,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": pi["amount"] if decline is None else None,
                "authorization_code": None if decline else new_id("", 6).upper(),
                "brand": card.brand,
                "capture_before": created + window if manual and decline is None else None,
                "checks": dict(pm["card"]["checks"]),
                "country": card.country,
                "exp_month": pm["card"]["exp_month"],
                "exp_year": pm["card"]["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card.fingerprint,
                "funding": card.funding,
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card.last4,
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card.brand,
                "network_token": {"used": False},
                "network_transaction_id": new_id("", 15) if decline is None else None,
                "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": {
                    "authentication_flow": "challenge",
                    "result": "authenticated",
                    "result_reason": None,
                    "version": "2.2.0",
                }
                if authenticated
                else None,
                "wallet": None,
            },
            "type": "card",
        },
        "radar_options": {},
        "receipt_email": pi["receipt_email"],
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "shipping": pi["shipping"],
        "source": None,
        "source_transfer": None,
        "statement_descriptor": pi["statement_descriptor"],
        "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
        "status": "failed" if decline else "succeeded",
        "transfer_data": pi["transfer_data"],
        "transfer_group": pi["transfer_group"],
    }
    return state.add(charge)


def _fail(state: State, pi: Obj, pm: Obj, card: Card, decline: Decline) -> NoReturn:
    charge = _charge(state, pi, pm, card, decline=decline, authenticated=False)
    pi["latest_charge"] = charge["id"]
    pi["status"] = "requires_payment_method"
    pi["payment_method"] = None
    pi["next_action"] = None
    pi["last_payment_error"] = payment_methods.last_error(decline, state, pm, charge)
    state.secret(pi["id"]).pop("authenticated", None)
    if not pm.get("customer"):
        state.secret(pm["id"])["consumed"] = True
    state.emit("charge.failed", charge)
    state.emit("payment_intent.payment_failed", pi)
    raise payment_methods.decline_error(decline, state, pm=pm, charge=charge, payment_intent=pi)


def _succeed(state: State, pi: Obj, pm: Obj, card: Card, *, authenticated: bool) -> None:
    charge = _charge(state, pi, pm, card, decline=None, authenticated=authenticated)
    pi["latest_charge"] = charge["id"]
    pi["last_payment_error"] = None
    pi["next_action"] = None
    manual = pi["capture_method"] == "manual"
    if pi["setup_future_usage"] and pi["customer"] and not pm.get("customer"):
        customer = state.get(pi["customer"], "customer")
        payment_methods.attach(state, pm, customer)
    if pi["setup_future_usage"] == "off_session" and pm.get("customer"):
        state.secret(pm["id"])["setup_off_session"] = True
    if not pm.get("customer"):
        state.secret(pm["id"])["consumed"] = True
    if manual:
        pi["status"] = "requires_capture"
        pi["amount_capturable"] = pi["amount"]
        state.emit("charge.succeeded", charge)
        state.emit("payment_intent.amount_capturable_updated", pi)
        return
    _record_capture(state, pi, charge, pi["amount"])
    state.emit("charge.succeeded", charge)
    state.emit("payment_intent.succeeded", pi)


def _record_capture(state: State, pi: Obj, charge: Obj, amount: int) -> None:
    from devtools.stripe_standin.connect import destination_transfer

    charge["captured"] = True
    charge["amount_captured"] = amount
    pm = state.secret(charge["payment_method"]).get("card")
    bypass = getattr(pm, "number", "") == "4000000000000077"
    charge["balance_transaction"] = balance_transaction(
        state,
        amount,
        charge["currency"],
        charge["id"],
        "charge",
        fee=_card_fee(amount),
        available_after=0.0 if bypass else state.settings.funds_available_after_s,
    )["id"]
    pi["status"] = "succeeded"
    pi["amount_received"] = amount
    pi["amount_capturable"] = 0
    if pi["transfer_data"]:
        destination_transfer(state, pi, charge)


def _card_fee(amount: int) -> int:
    """Stripe's standard US card pricing, 2.9% + 30¢ (an approximation for other accounts)."""
    return round(amount * 0.029) + 30


def balance_transaction(
    state: State,
    amount: int,
    currency: str,
    source: str,
    type_: str,
    *,
    fee: int = 0,
    available_after: float = 0.0,
) -> Obj:
    """Money in (a charge) becomes available `available_after` seconds later; money out
    (a transfer, a refund) leaves the available balance at once."""
    created = now()
    return state.add(
        {
            "id": new_id("txn_"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": created + round(available_after),
            "created": created,
            "currency": currency,
            "description": None,
            "exchange_rate": None,
            "fee": fee,
            "fee_details": [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else [],
            "net": amount - fee,
            "reporting_category": type_,
            "source": source,
            "status": "pending",
            "type": type_,
        }
    )


def authenticate(state: State, pi: Obj, success: bool) -> None:
    """The customer completed (or failed) the 3-D Secure challenge of this PaymentIntent."""
    if pi["status"] != "requires_action":
        raise invalid(
            f"This PaymentIntent has a status of {pi['status']}, not requires_action.",
            code="payment_intent_unexpected_state",
        )
    hidden = state.secret(pi["id"])
    pm = state.get(pi["payment_method"], "payment_method", label="PaymentMethod")
    if not success:
        pi["status"] = "requires_payment_method"
        pi["next_action"] = None
        pi["payment_method"] = None
        pi["last_payment_error"] = {
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide "
            "payment_method_data or a new PaymentMethod to attempt to fulfill this "
            "PaymentIntent again.",
            "payment_method": state.export(pm),
            "type": "invalid_request_error",
        }
        state.emit("payment_intent.payment_failed", pi)
        return
    hidden["authenticated"] = pm["id"]
    pi["next_action"] = None
    if pi["confirmation_method"] == "manual":
        pi["status"] = "requires_confirmation"
        return
    card = payment_methods.card_of(state, pm)
    if card.decline is not None:
        try:
            _fail(state, pi, pm, card, card.decline)
        except StripeError:
            pass  # the failure is on the PaymentIntent; the device sees it there
        return
    _succeed(state, pi, pm, card, authenticated=True)


# capture / cancel ------------------------------------------------------------


@route("POST", "/v1/payment_intents/{id}/capture")
def capture_payment_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_CAPTURE)
    state = ctx.state
    pi = state.get(ctx.arg("id"), "payment_intent")
    capture(state, pi, p)
    return pi


def capture(state: State, pi: Obj, p: Params, amount_param: str = "amount_to_capture") -> None:
    if pi["status"] != "requires_capture":
        raise invalid(
            f"This PaymentIntent could not be captured because it has a status of "
            f"{pi['status']}. Only a PaymentIntent with one of the following statuses may be "
            "captured: requires_capture.",
            code="payment_intent_unexpected_state",
        )
    amount = p.integer(amount_param, minimum=1)
    if amount is None:
        amount = pi["amount_capturable"]
    if amount > pi["amount_capturable"]:
        raise invalid(
            f"The amount to capture ({amount}) must be less than or equal to the "
            f"PaymentIntent's amount_capturable ({pi['amount_capturable']}).",
            param=amount_param,
            code="amount_too_large",
        )
    final = p.boolean("final_capture")
    if final is False:
        raise invalid(
            "Multicapture (final_capture=false) is not available on this PaymentIntent.",
            param="final_capture",
        )
    fee = p.integer("application_fee_amount", minimum=0)
    if fee is not None:
        if fee > amount:
            raise invalid(
                "The application fee amount must be less than or equal to the captured amount.",
                param="application_fee_amount",
            )
        pi["application_fee_amount"] = fee
    transfer = p.mapping("transfer_data")
    if transfer is not None:
        transfer.check(["amount"])
        transfer_amount = transfer.integer("amount", minimum=0)
        if pi["transfer_data"] is None:
            raise invalid(
                "transfer_data[amount] can only be set on a destination charge.",
                param="transfer_data[amount]",
            )
        if transfer_amount is not None:
            pi["transfer_data"] = {**pi["transfer_data"], "amount": transfer_amount}
    for key in ("statement_descriptor", "statement_descriptor_suffix"):
        if p.has(key):
            pi[key] = _descriptor(p, key)
    pi["metadata"] = apply_metadata(pi["metadata"], p.metadata())
    charge = state.get(pi["latest_charge"], "charge")
    before = dict(charge)
    if fee is not None:
        charge["application_fee_amount"] = fee
    _record_capture(state, pi, charge, amount)
    state.emit("charge.captured", charge, previous_attributes(before, charge))
    state.emit("payment_intent.succeeded", pi)


@route("POST", "/v1/payment_intents/{id}/cancel")
def cancel_payment_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["cancellation_reason"])
    state = ctx.state
    pi = state.get(ctx.arg("id"), "payment_intent")
    reason = p.choice(
        "cancellation_reason", ["abandoned", "duplicate", "fraudulent", "requested_by_customer"]
    )
    cancel(state, pi, reason)
    return pi


def cancel(state: State, pi: Obj, reason: str | None) -> None:
    if pi["status"] not in _CANCELABLE:
        raise invalid(
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. "
            "Only a PaymentIntent with one of the following statuses may be canceled: "
            "requires_payment_method, requires_capture, requires_confirmation, requires_action, "
            "processing.",
            code="payment_intent_unexpected_state",
        )
    authorized = pi["status"] == "requires_capture"
    pi["status"] = "canceled"
    pi["canceled_at"] = now()
    pi["cancellation_reason"] = reason
    pi["amount_capturable"] = 0
    pi["next_action"] = None
    if authorized:
        # releasing an authorization shows on its charge as a full refund, as on Stripe
        charge = state.get(pi["latest_charge"], "charge")
        before = dict(charge)
        charge["amount_refunded"] = charge["amount"]
        charge["refunded"] = True
        state.emit("charge.refunded", charge, previous_attributes(before, charge))
    state.emit("payment_intent.canceled", pi)


def expire(state: State, pi: Obj) -> None:
    """The authorization lapsed before capture (`/_config/intents/{id}/expire`)."""
    if pi["status"] != "requires_capture":
        raise invalid(
            f"Only an authorized PaymentIntent (requires_capture) can expire; this one is "
            f"{pi['status']}.",
            code="payment_intent_unexpected_state",
        )
    charge = state.get(pi["latest_charge"], "charge")
    state.emit("charge.expired", charge)
    pi["status"] = "canceled"
    pi["canceled_at"] = now()
    pi["cancellation_reason"] = "expired"
    pi["amount_capturable"] = 0
    state.emit("payment_intent.canceled", pi)


# charges ---------------------------------------------------------------------


@route("POST", "/v1/charges")
def create_charge(ctx: Ctx) -> Obj:
    raise invalid(
        "The Stripe stand-in makes charges through PaymentIntents only "
        "(POST /v1/payment_intents with confirm=true).",
    )


@route("GET", "/v1/charges/{id}")
def retrieve_charge(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "charge")


@route("POST", "/v1/charges/{id}")
def update_charge(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(
        [
            "customer",
            "description",
            "fraud_details",
            "metadata",
            "receipt_email",
            "shipping",
            "transfer_group",
        ]
    )
    state = ctx.state
    charge = state.get(ctx.arg("id"), "charge")
    before = dict(charge)
    for key in ("description", "receipt_email", "transfer_group"):
        if p.has(key):
            charge[key] = p.string(key)
    charge["metadata"] = apply_metadata(charge["metadata"], p.metadata())
    previous = previous_attributes(before, charge)
    if previous:
        state.emit("charge.updated", charge, previous)
    return charge


@route("POST", "/v1/charges/{id}/capture")
def capture_charge(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(
        [
            "amount",
            "application_fee_amount",
            "metadata",
            "statement_descriptor",
            "statement_descriptor_suffix",
        ]
    )
    state = ctx.state
    charge = state.get(ctx.arg("id"), "charge")
    pi = state.get(charge["payment_intent"], "payment_intent")
    capture(state, pi, p, amount_param="amount")
    return charge


@route("GET", "/v1/charges")
def list_charges(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(
        [
            "customer",
            "payment_intent",
            "transfer_group",
            "created",
            "limit",
            "starting_after",
            "ending_before",
        ]
    )
    customer = p.string("customer")
    intent = p.string("payment_intent")
    group = p.string("transfer_group")
    created = _created_filter(p)
    items = ctx.state.all(
        "charge",
        lambda c: (
            (customer is None or c["customer"] == customer)
            and (intent is None or c["payment_intent"] == intent)
            and (group is None or c["transfer_group"] == group)
            and created(c)
        ),
    )
    return ctx.state.page(items, p, "/v1/charges")


def available_balance(state: State, currency: str) -> int:
    at = now()
    return sum(
        t["net"]
        for t in state.all("balance_transaction", lambda t: t["currency"] == currency)
        if t["available_on"] <= at
    )


@route("GET", "/v1/balance")
def retrieve_balance(ctx: Ctx) -> Obj:
    """The platform's balance per currency: available now, and pending (card funds waiting
    for `funds_available_after_s`)."""
    at = now()
    totals: dict[str, list[int]] = {}
    for t in ctx.state.all("balance_transaction"):
        pair = totals.setdefault(t["currency"], [0, 0])
        pair[0 if t["available_on"] <= at else 1] += t["net"]
    totals.setdefault("usd", [0, 0])

    def side(i: int) -> list[Obj]:
        return [
            {"amount": v[i], "currency": c, "source_types": {"card": v[i]}}
            for c, v in sorted(totals.items())
        ]

    return {
        "object": "balance",
        "available": side(0),
        "connect_reserved": [{"amount": 0, "currency": c} for c in sorted(totals)],
        "livemode": False,
        "pending": side(1),
    }


@route("GET", "/v1/balance_transactions/{id}")
def retrieve_balance_transaction(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "balance_transaction")
