"""SetupIntents: a client secret for the device, and a confirm that saves the card.

Confirming with a card checks it (a declining card fails here, as on Stripe), asks for
3-D Secure where the test card wants it at setup, and on success attaches the card to
the SetupIntent's customer and marks it set up for off-session use (`usage=off_session`).
"""

from __future__ import annotations

from devtools.stripe_standin import payment_methods
from devtools.stripe_standin.errors import StripeError, invalid
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.intents import next_action, payment_method_config, require_return_url
from devtools.stripe_standin.params import Params, apply_metadata
from devtools.stripe_standin.state import Obj, State, new_id, now, previous_attributes

_CREATE = {
    "allowed_payment_method_types",
    "attach_to_self",
    "automatic_payment_methods",
    "confirm",
    "confirmation_token",
    "customer",
    "customer_account",
    "description",
    "excluded_payment_method_types",
    "flow_directions",
    "mandate_data",
    "metadata",
    "on_behalf_of",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
    "return_url",
    "single_use",
    "usage",
    "use_stripe_sdk",
}
_CONFIRM = {
    "allowed_payment_method_types",
    "confirmation_token",
    "mandate_data",
    "payment_method",
    "payment_method_data",
    "payment_method_options",
    "return_url",
    "use_stripe_sdk",
}
_UPDATE = {
    "allowed_payment_method_types",
    "attach_to_self",
    "customer",
    "customer_account",
    "description",
    "excluded_payment_method_types",
    "flow_directions",
    "metadata",
    "payment_method",
    "payment_method_configuration",
    "payment_method_data",
    "payment_method_options",
    "payment_method_types",
}
_TYPE_PARAMS = (
    "payment_method_types",
    "allowed_payment_method_types",
    "excluded_payment_method_types",
    "automatic_payment_methods",
)
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


def _pm_from_data(state: State, p: Params) -> Obj | None:
    data = p.mapping("payment_method_data")
    if data is None:
        return None
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


@route("POST", "/v1/setup_intents")
def create_setup_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_CREATE)
    state = ctx.state
    customer_id = p.string("customer")
    if customer_id:
        state.get(customer_id, "customer", param="customer", status=400)
    usage = p.choice("usage", ["off_session", "on_session"]) or "off_session"
    config = payment_method_config(p)
    confirm = p.boolean("confirm") or False
    return_url = p.string("return_url")
    if return_url and not confirm:
        raise invalid("You can only pass `return_url` when `confirm=true`.", param="return_url")
    pm = _pm_from_data(state, p)
    if pm is None and p.has("payment_method"):
        pm = payment_methods.resolve(state, p.string("payment_method", required=True) or "")
    if pm is not None:
        payment_methods.check_usable(state, pm, customer_id)
    intent: Obj = {
        "id": new_id("seti_"),
        "object": "setup_intent",
        "application": None,
        **config,
        "cancellation_reason": None,
        "client_secret": "",
        "created": now(),
        "customer": customer_id,
        "description": p.string("description"),
        "flow_directions": p.strings("flow_directions"),
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": apply_metadata({}, p.metadata()),
        "next_action": None,
        "on_behalf_of": p.string("on_behalf_of"),
        "payment_method": pm["id"] if pm else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "single_use_mandate": None,
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "usage": usage,
    }
    intent["client_secret"] = f"{intent['id']}_secret_{new_id('', 32)}"
    if confirm:
        if pm is None:
            raise _missing_payment_method()
        require_return_url(intent, return_url, "SetupIntent")
    state.add(intent, return_url=return_url)
    state.emit("setup_intent.created", intent)
    if confirm:
        _confirm(ctx, intent)
    return intent


def _missing_payment_method() -> StripeError:
    return invalid(
        "You cannot confirm this SetupIntent because it's missing a payment method. Update "
        "the SetupIntent with a payment method and then confirm it again.",
        code="setup_intent_unexpected_state",
    )


@route("GET", "/v1/setup_intents/{id}", publishable=True)
def retrieve_setup_intent(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "setup_intent", label="setupintent")


@route("POST", "/v1/setup_intents/{id}")
def update_setup_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_UPDATE)
    state = ctx.state
    intent = state.get(ctx.arg("id"), "setup_intent", label="setupintent")
    if intent["status"] in ("succeeded", "canceled"):
        raise invalid(
            f"You cannot update this SetupIntent because it has a status of {intent['status']}.",
            code="setup_intent_unexpected_state",
        )
    before = dict(intent)
    if p.has("customer"):
        customer_id = p.string("customer")
        if customer_id:
            state.get(customer_id, "customer", param="customer", status=400)
        intent["customer"] = customer_id
    if p.has("description"):
        intent["description"] = p.string("description")
    pm = _pm_from_data(state, p)
    if pm is None and p.has("payment_method"):
        pm = payment_methods.resolve(state, p.string("payment_method", required=True) or "")
    if pm is not None:
        payment_methods.check_usable(state, pm, intent["customer"])
        intent["payment_method"] = pm["id"]
        intent["status"] = "requires_confirmation"
        intent["next_action"] = None
    if any(p.has(k) for k in _TYPE_PARAMS):
        intent.update(payment_method_config(p))
    intent["metadata"] = apply_metadata(intent["metadata"], p.metadata())
    previous = previous_attributes(before, intent)
    if previous:
        state.emit("setup_intent.updated", intent, previous)
    return intent


@route("POST", "/v1/setup_intents/{id}/confirm", publishable=True)
def confirm_setup_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_CONFIRM)
    state = ctx.state
    intent = state.get(ctx.arg("id"), "setup_intent", label="setupintent")
    _check_confirmable(intent)
    pm = _pm_from_data(state, p)
    if pm is None and p.has("payment_method"):
        pm = payment_methods.resolve(state, p.string("payment_method", required=True) or "")
    if pm is None and intent["payment_method"]:
        pm = state.get(intent["payment_method"], "payment_method", label="PaymentMethod")
    if pm is None:
        raise _missing_payment_method()
    payment_methods.check_usable(state, pm, intent["customer"])
    return_url = p.string("return_url") or state.secret(intent["id"]).get("return_url")
    require_return_url(intent, return_url, "SetupIntent")
    state.secret(intent["id"])["return_url"] = return_url
    if intent["payment_method"] != pm["id"]:
        state.secret(intent["id"]).pop("authenticated", None)
    intent["payment_method"] = pm["id"]
    _confirm(ctx, intent)
    return intent


def _check_confirmable(intent: Obj) -> None:
    if intent["status"] == "succeeded":
        raise invalid(
            "You cannot confirm this SetupIntent because it has already succeeded.",
            code="setup_intent_unexpected_state",
        )
    if intent["status"] not in _CONFIRMABLE:
        raise invalid(
            f"You cannot confirm this SetupIntent because it has a status of {intent['status']}.",
            code="setup_intent_unexpected_state",
        )


def _confirm(ctx: Ctx, intent: Obj) -> None:
    state = ctx.state
    pm = state.get(intent["payment_method"], "payment_method", label="PaymentMethod")
    card = payment_methods.card_of(state, pm)
    intent["latest_attempt"] = new_id("setatt_")
    if card.decline is not None and card.decline_on_attach:
        intent["status"] = "requires_payment_method"
        intent["payment_method"] = None
        intent["next_action"] = None
        intent["last_setup_error"] = payment_methods.last_error(card.decline, state, pm)
        state.emit("setup_intent.setup_failed", intent)
        raise payment_methods.decline_error(card.decline, state, pm=pm, setup_intent=intent)
    authenticated = state.secret(intent["id"]).get("authenticated") == pm["id"]
    if card.auth_on_setup and not authenticated:
        intent["status"] = "requires_action"
        intent["next_action"] = next_action(
            intent, ctx.base_url, state.secret(intent["id"]).get("return_url")
        )
        state.emit("setup_intent.requires_action", intent)
        return
    succeed(state, intent, pm)


def succeed(state: State, intent: Obj, pm: Obj) -> None:
    intent["status"] = "succeeded"
    intent["next_action"] = None
    intent["last_setup_error"] = None
    if intent["customer"] and pm.get("customer") != intent["customer"]:
        customer = state.get(intent["customer"], "customer")
        payment_methods.attach(state, pm, customer)
    if intent["usage"] == "off_session":
        state.secret(pm["id"])["setup_off_session"] = True
    state.emit("setup_intent.succeeded", intent)


def authenticate(state: State, intent: Obj, success: bool) -> None:
    """The customer completed (or failed) the 3-D Secure challenge of this SetupIntent."""
    if intent["status"] != "requires_action":
        raise invalid(
            f"This SetupIntent has a status of {intent['status']}, not requires_action.",
            code="setup_intent_unexpected_state",
        )
    pm = state.get(intent["payment_method"], "payment_method", label="PaymentMethod")
    if success:
        state.secret(intent["id"])["authenticated"] = pm["id"]
        succeed(state, intent, pm)
        return
    intent["status"] = "requires_payment_method"
    intent["next_action"] = None
    intent["payment_method"] = None
    intent["last_setup_error"] = {
        "code": "setup_intent_authentication_failure",
        "doc_url": "https://stripe.com/docs/error-codes/setup-intent-authentication-failure",
        "message": "The latest attempt to set up the payment method has failed because "
        "authentication failed.",
        "payment_method": state.export(pm),
        "type": "invalid_request_error",
    }
    state.emit("setup_intent.setup_failed", intent)


@route("POST", "/v1/setup_intents/{id}/cancel")
def cancel_setup_intent(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["cancellation_reason"])
    state = ctx.state
    intent = state.get(ctx.arg("id"), "setup_intent", label="setupintent")
    if intent["status"] in ("succeeded", "canceled"):
        raise invalid(
            f"You cannot cancel this SetupIntent because it has a status of {intent['status']}.",
            code="setup_intent_unexpected_state",
        )
    reason = p.choice("cancellation_reason", ["abandoned", "duplicate", "requested_by_customer"])
    intent["status"] = "canceled"
    intent["cancellation_reason"] = reason
    intent["next_action"] = None
    state.emit("setup_intent.canceled", intent)
    return intent


@route("GET", "/v1/setup_intents")
def list_setup_intents(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(
        [
            "customer",
            "customer_account",
            "payment_method",
            "created",
            "attach_to_self",
            "limit",
            "starting_after",
            "ending_before",
        ]
    )
    customer = p.string("customer")
    pm = p.string("payment_method")
    items = ctx.state.all(
        "setup_intent",
        lambda i: (
            (customer is None or i["customer"] == customer)
            and (pm is None or i["payment_method"] == pm)
        ),
    )
    return ctx.state.page(items, p, "/v1/setup_intents")
