"""Customers: create, retrieve, update (`invoice_settings[default_payment_method]`), list."""

from __future__ import annotations

from typing import Any

from devtools.stripe_standin.errors import invalid
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.params import Params, apply_metadata
from devtools.stripe_standin.state import Obj, State, new_id, now, previous_attributes

_FIELDS = ("name", "email", "description", "phone")
_CREATE = {
    "address",
    "balance",
    "business_name",
    "cash_balance",
    "description",
    "email",
    "individual_name",
    "invoice_prefix",
    "invoice_settings",
    "metadata",
    "name",
    "next_invoice_sequence",
    "payment_method",
    "phone",
    "preferred_locales",
    "shipping",
    "source",
    "tax",
    "tax_exempt",
    "tax_id_data",
    "test_clock",
    "validate",
}
_UPDATE = (_CREATE - {"payment_method", "tax_id_data", "test_clock"}) | {"default_source"}


def _default_payment_method(state: State, customer_id: str, p: Params) -> tuple[bool, str | None]:
    settings = p.mapping("invoice_settings")
    if settings is None:
        return False, None
    settings.check(["custom_fields", "default_payment_method", "footer", "rendering_options"])
    if not settings.has("default_payment_method"):
        return False, None
    pm_id = settings.string("default_payment_method")
    if pm_id is None:
        return True, None
    pm = state.find(pm_id, "payment_method")
    if pm is None or pm.get("customer") != customer_id:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            param="invoice_settings[default_payment_method]",
            code="resource_missing",
        )
    return True, pm_id


@route("POST", "/v1/customers")
def create_customer(ctx: Ctx) -> Obj:
    from devtools.stripe_standin import payment_methods

    p = ctx.params
    p.check(_CREATE)
    state = ctx.state
    values = {key: p.string(key) for key in _FIELDS}
    metadata = apply_metadata({}, p.metadata())
    balance = p.integer("balance") or 0
    pm = None
    if p.has("payment_method"):
        pm = payment_methods.resolve(state, p.string("payment_method", required=True) or "")
        payment_methods.check_usable(state, pm, None)
    customer: Obj = {
        "id": new_id("cus_", 14),
        "object": "customer",
        "address": None,
        "balance": balance,
        "created": now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": values["description"],
        "discount": None,
        "email": values["email"],
        "invoice_prefix": new_id("", 8).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata,
        "name": values["name"],
        "next_invoice_sequence": 1,
        "phone": values["phone"],
        "preferred_locales": p.strings("preferred_locales") or [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    if pm is not None:
        card = payment_methods.card_of(state, pm)
        if card.decline is not None and card.decline_on_attach:
            raise payment_methods.decline_error(card.decline, state, pm=pm)
    state.add(customer)
    state.emit("customer.created", customer)
    if pm is not None:
        payment_methods.attach(state, pm, customer)
    changed, default = _default_payment_method(state, customer["id"], p)
    if changed:
        customer["invoice_settings"]["default_payment_method"] = default
    return customer


@route("GET", "/v1/customers/{id}")
def retrieve_customer(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "customer")


@route("POST", "/v1/customers/{id}")
def update_customer(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_UPDATE)
    state = ctx.state
    customer = state.get(ctx.arg("id"), "customer")
    if customer.get("deleted"):
        raise invalid(
            f"No such customer: '{customer['id']}'", code="resource_missing", param="id", status=404
        )
    before: dict[str, Any] = {
        k: (dict(v) if isinstance(v, dict) else v) for k, v in customer.items()
    }
    changed, default = _default_payment_method(state, customer["id"], p)
    for key in _FIELDS:
        if p.has(key):
            customer[key] = p.string(key)
    if p.has("balance"):
        customer["balance"] = p.integer("balance") or 0
    if p.has("preferred_locales"):
        customer["preferred_locales"] = p.strings("preferred_locales") or []
    customer["metadata"] = apply_metadata(customer["metadata"], p.metadata())
    if changed:
        customer["invoice_settings"] = {
            **customer["invoice_settings"],
            "default_payment_method": default,
        }
    previous = previous_attributes(before, customer)
    if previous:
        state.emit("customer.updated", customer, previous)
    return customer


@route("DELETE", "/v1/customers/{id}")
def delete_customer(ctx: Ctx) -> Obj:
    ctx.params.check([])
    state = ctx.state
    customer = state.get(ctx.arg("id"), "customer")
    if customer.get("deleted"):
        raise invalid(
            f"No such customer: '{customer['id']}'", code="resource_missing", param="id", status=404
        )
    snapshot = dict(customer)
    for pm in state.all("payment_method", lambda o: o.get("customer") == customer["id"]):
        pm["customer"] = None
        state.secret(pm["id"])["consumed"] = True
    customer.clear()
    customer.update({"id": snapshot["id"], "object": "customer", "deleted": True})
    state.emit("customer.deleted", snapshot)
    return customer


@route("GET", "/v1/customers")
def list_customers(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["email", "created", "limit", "starting_after", "ending_before", "test_clock"])
    email = p.string("email")
    items = ctx.state.all(
        "customer",
        lambda c: not c.get("deleted") and (email is None or c.get("email") == email),
    )
    return ctx.state.page(items, p, "/v1/customers")
