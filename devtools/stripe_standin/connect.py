"""Connect for settlement: connected accounts, onboarding links, transfers and reversals.

A new account's requested capabilities start `inactive` with requirements due, as on
Stripe; a transfer to an account whose `transfers` capability is not active is refused
(400 `insufficient_capabilities_for_transfer`). Onboarding completes offline by opening
the URL of an account link (`POST /v1/account_links`), or `POST /_config/accounts/{id}/onboard`.
A transfer draws on the platform's available balance (card funds join it
`funds_available_after_s` after capture, at once for `pm_card_bypassPending`); more than
is available is 400 `balance_insufficient`, as on Stripe. A transfer tied to a charge
(`source_transaction`, destination charges) draws on that charge instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from devtools.stripe_standin.errors import invalid, no_such
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.params import apply_metadata
from devtools.stripe_standin.payment_intents import (
    available_balance,
    balance_transaction,
    currency_param,
)
from devtools.stripe_standin.state import Obj, State, new_id, now, previous_attributes

_ACCOUNT_CREATE = {
    "account_token",
    "business_profile",
    "business_type",
    "capabilities",
    "company",
    "controller",
    "country",
    "default_currency",
    "documents",
    "email",
    "external_account",
    "groups",
    "individual",
    "metadata",
    "settings",
    "tos_acceptance",
    "type",
}
_ACCOUNT_UPDATE = _ACCOUNT_CREATE - {"type", "country", "controller"}
_CURRENCY_BY_COUNTRY = {
    "US": "usd",
    "GB": "gbp",
    "CA": "cad",
    "AU": "aud",
    "JP": "jpy",
    "CH": "chf",
    "IN": "inr",
    "MX": "mxn",
    "SG": "sgd",
    "NZ": "nzd",
}
_EURO = {
    "AT",
    "BE",
    "CY",
    "DE",
    "EE",
    "ES",
    "FI",
    "FR",
    "GR",
    "HR",
    "IE",
    "IT",
    "LT",
    "LU",
    "LV",
    "MT",
    "NL",
    "PT",
    "SI",
    "SK",
}
_DUE = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


def _requirements(due: list[str]) -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": "requirements.past_due" if due else None,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due),
        "pending_verification": [],
    }


@route("POST", "/v1/accounts")
def create_account(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_ACCOUNT_CREATE)
    kind = p.choice("type", ["custom", "express", "standard"])
    controller = p.raw("controller") if isinstance(p.raw("controller"), dict) else None
    if kind is None and controller is None:
        kind = "standard"
    country = (p.string("country") or "US").upper()
    currency = p.string("default_currency") or (
        "eur" if country in _EURO else _CURRENCY_BY_COUNTRY.get(country, "usd")
    )
    capabilities: dict[str, str] = {}
    requested = p.mapping("capabilities")
    if requested is not None:
        for name in requested.data:
            cap = requested.mapping(name)
            if cap is None:
                raise invalid(
                    f"Invalid capabilities[{name}]: must be a hash", param=f"capabilities[{name}]"
                )
            cap.check(["requested"])
            if cap.boolean("requested"):
                capabilities[name] = "inactive"
    if kind == "standard":  # Stripe requests card payments and transfers for standard accounts
        capabilities.setdefault("card_payments", "inactive")
        capabilities.setdefault("transfers", "inactive")
    if kind in ("express", "custom") and not capabilities:
        raise invalid(
            "You must request at least one capability when creating an account of type "
            f"{kind}: capabilities[transfers][requested]=true.",
            param="capabilities",
        )
    business_type = p.choice(
        "business_type", ["company", "government_entity", "individual", "non_profit"]
    )
    account: Obj = {
        "id": new_id("acct_", 16),
        "object": "account",
        "business_profile": {
            "mcc": None,
            "name": None,
            "product_description": None,
            "support_email": None,
            "support_phone": None,
            "support_url": None,
            "url": None,
        },
        "business_type": business_type,
        "capabilities": capabilities,
        "charges_enabled": False,
        "controller": controller or {"type": "application", "is_controller": True},
        "country": country,
        "created": now(),
        "default_currency": currency,
        "details_submitted": False,
        "email": p.string("email"),
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": "",
        },
        "future_requirements": _requirements([]),
        "metadata": apply_metadata({}, p.metadata()),
        "payouts_enabled": False,
        "requirements": _requirements(_DUE),
        "settings": {
            "payouts": {
                "debit_negative_balances": True,
                "schedule": {"delay_days": 2, "interval": "daily"},
                "statement_descriptor": None,
            },
        },
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": kind or "none",
    }
    account["external_accounts"]["url"] = f"/v1/accounts/{account['id']}/external_accounts"
    profile = p.mapping("business_profile")
    if profile is not None:
        for key in account["business_profile"]:
            if profile.has(key):
                account["business_profile"][key] = profile.string(key)
    return ctx.state.add(account)


def _account(ctx: Ctx, ident: str) -> Obj:
    account = ctx.state.find(ident, "account")
    if account is None:
        raise invalid(
            f"The provided key '{ctx.api_key[:8]}...' does not have access to account "
            f"'{ident}' (or that account does not exist). Application access may have been "
            "revoked.",
            code="account_invalid",
            status=403,
        )
    return account


@route("GET", "/v1/accounts/{id}")
def retrieve_account(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return _account(ctx, ctx.arg("id"))


@route("GET", "/v1/account")
def retrieve_platform_account(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return {
        "id": ctx.state.platform_account_id,
        "object": "account",
        "business_profile": {"name": "Stripe stand-in platform"},
        "capabilities": {"card_payments": "active", "transfers": "active"},
        "charges_enabled": True,
        "country": "US",
        "default_currency": "usd",
        "details_submitted": True,
        "email": None,
        "payouts_enabled": True,
        "type": "standard",
    }


@route("POST", "/v1/accounts/{id}")
def update_account(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_ACCOUNT_UPDATE)
    account = _account(ctx, ctx.arg("id"))
    before = dict(account)
    if p.has("email"):
        account["email"] = p.string("email")
    account["metadata"] = apply_metadata(account["metadata"], p.metadata())
    previous = previous_attributes(before, account)
    if previous:
        ctx.state.emit("account.updated", account, previous)
    return account


@route("DELETE", "/v1/accounts/{id}")
def delete_account(ctx: Ctx) -> Obj:
    ctx.params.check([])
    account = _account(ctx, ctx.arg("id"))
    del ctx.state.objects[account["id"]]
    return {"id": account["id"], "object": "account", "deleted": True}


@route("GET", "/v1/accounts")
def list_accounts(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["created", "limit", "starting_after", "ending_before"])
    return ctx.state.page(ctx.state.all("account"), p, "/v1/accounts")


def onboard(state: State, account: Obj) -> Obj:
    """What finishing Stripe's onboarding does: details submitted, capabilities active."""
    before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in account.items()}
    account["details_submitted"] = True
    account["capabilities"] = {name: "active" for name in account["capabilities"]}
    account["charges_enabled"] = "card_payments" in account["capabilities"]
    account["payouts_enabled"] = True
    account["requirements"] = _requirements([])
    account["tos_acceptance"] = {"date": now(), "ip": "127.0.0.1", "user_agent": None}
    account["business_type"] = account["business_type"] or "individual"
    previous = previous_attributes(before, account)
    if previous:
        state.emit("account.updated", account, previous)
    return account


@route("POST", "/v1/account_links")
def create_account_link(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["account", "collect", "collection_options", "refresh_url", "return_url", "type"])
    account_id = p.string("account", required=True) or ""
    if ctx.state.find(account_id, "account") is None:
        raise no_such("account", account_id, param="account", status=400)
    p.choice("type", ["account_onboarding", "account_update"], required=True)
    return_url = p.string("return_url")
    p.string("refresh_url")  # where Stripe sends an expired link; links never expire here
    created = now()
    url = f"{ctx.base_url}/_connect/onboard/{account_id}"
    if return_url:
        url += f"?return_url={quote(return_url, safe='')}"
    return {"object": "account_link", "created": created, "expires_at": created + 300, "url": url}


# transfers -------------------------------------------------------------------

_TRANSFER_CREATE = {
    "amount",
    "currency",
    "description",
    "destination",
    "metadata",
    "source_transaction",
    "source_type",
    "transfer_group",
}


def _transfer(
    state: State,
    *,
    amount: int,
    currency: str,
    destination: Obj,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    source_transaction: str | None = None,
    transfer_group: str | None = None,
) -> Obj:
    transfer: Obj = {
        "id": new_id("tr_"),
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": None,
        "created": now(),
        "currency": currency,
        "description": description,
        "destination": destination["id"],
        "destination_payment": new_id("py_"),
        "livemode": False,
        "metadata": metadata or {},
        "reversals": {"object": "list", "data": [], "has_more": False, "total_count": 0, "url": ""},
        "reversed": False,
        "source_transaction": source_transaction,
        "source_type": "card",
        "transfer_group": transfer_group,
    }
    transfer["reversals"]["url"] = f"/v1/transfers/{transfer['id']}/reversals"
    state.add(transfer)
    transfer["balance_transaction"] = balance_transaction(
        state, -amount, currency, transfer["id"], "transfer"
    )["id"]
    state.emit("transfer.created", transfer)
    return transfer


def _check_destination(account: Obj, param: str) -> None:
    if account["capabilities"].get("transfers") != "active":
        raise invalid(
            "Your destination account needs to have at least one of the following capabilities "
            "enabled: transfers, crypto_transfers, legacy_payments",
            param=param,
            code="insufficient_capabilities_for_transfer",
        )


@route("POST", "/v1/transfers")
def create_transfer(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(_TRANSFER_CREATE)
    state = ctx.state
    amount = p.integer("amount", required=True, minimum=1)
    assert amount is not None
    currency = currency_param(p) or "usd"
    destination_id = p.string("destination", required=True) or ""
    destination = state.find(destination_id, "account")
    if destination is None:
        raise no_such("destination", destination_id, param="destination", status=400)
    _check_destination(destination, "destination")
    source = p.string("source_transaction")
    if source:
        charge = state.find(source, "charge")
        if charge is None:
            raise no_such("charge", source, param="source_transaction", status=400)
        if not charge["captured"] or charge["currency"] != currency:
            raise invalid(
                "The source_transaction must be a captured charge in the transfer's currency.",
                param="source_transaction",
            )
        transferred = sum(
            t["amount"] for t in state.all("transfer", lambda t: t["source_transaction"] == source)
        )
        if amount + transferred > charge["amount_captured"] - charge["amount_refunded"]:
            raise invalid(
                "Transfers using this transaction as a source must not exceed the source "
                f"amount of {charge['amount_captured'] - charge['amount_refunded']}.",
                param="amount",
            )
    elif amount > available_balance(state, currency):
        raise invalid(
            "You have insufficient available funds in your Stripe account. Try adding funds "
            "directly to your available balance by creating Charges using the "
            "4000000000000077 test card.",
            code="balance_insufficient",
        )
    p.choice("source_type", ["bank_account", "card", "fpx"])
    return _transfer(
        state,
        amount=amount,
        currency=currency,
        destination=destination,
        description=p.string("description"),
        metadata=apply_metadata({}, p.metadata()),
        source_transaction=source,
        transfer_group=p.string("transfer_group"),
    )


def destination_transfer(state: State, pi: Obj, charge: Obj) -> None:
    """A destination charge (`transfer_data[destination]`) pays the account on capture."""
    data = pi["transfer_data"]
    destination = state.find(data["destination"], "account")
    if destination is None:
        return
    amount = data.get("amount")
    if amount is None:
        amount = charge["amount_captured"] - (pi["application_fee_amount"] or 0)
    amount = min(amount, charge["amount_captured"])
    transfer = _transfer(
        state,
        amount=amount,
        currency=charge["currency"],
        destination=destination,
        source_transaction=charge["id"],
        transfer_group=pi["transfer_group"] or f"group_{pi['id']}",
    )
    charge["transfer"] = transfer["id"]


def reverse_for_refund(state: State, charge: Obj, refunded: int) -> str | None:
    transfer = state.find(charge.get("transfer"), "transfer")
    if transfer is None:
        return None
    share = round(transfer["amount"] * refunded / max(1, charge["amount_captured"]))
    amount = min(share, transfer["amount"] - transfer["amount_reversed"])
    if amount <= 0:
        return None
    return _reverse(state, transfer, amount, {})["id"]


def _reverse(state: State, transfer: Obj, amount: int, metadata: dict[str, str]) -> Obj:
    reversal: Obj = {
        "id": new_id("trr_"),
        "object": "transfer_reversal",
        "amount": amount,
        "balance_transaction": None,
        "created": now(),
        "currency": transfer["currency"],
        "destination_payment_refund": new_id("pyr_"),
        "metadata": metadata,
        "source_refund": None,
        "transfer": transfer["id"],
    }
    state.add(reversal)
    reversal["balance_transaction"] = balance_transaction(
        state, amount, transfer["currency"], reversal["id"], "transfer_refund"
    )["id"]
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
    transfer["reversals"]["data"].insert(0, dict(reversal))
    transfer["reversals"]["total_count"] += 1
    state.emit("transfer.reversed", transfer)
    return reversal


@route("GET", "/v1/transfers/{id}")
def retrieve_transfer(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "transfer")


@route("POST", "/v1/transfers/{id}")
def update_transfer(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["description", "metadata"])
    state = ctx.state
    transfer = state.get(ctx.arg("id"), "transfer")
    before = dict(transfer)
    if p.has("description"):
        transfer["description"] = p.string("description")
    transfer["metadata"] = apply_metadata(transfer["metadata"], p.metadata())
    previous = previous_attributes(before, transfer)
    if previous:
        state.emit("transfer.updated", transfer, previous)
    return transfer


@route("GET", "/v1/transfers")
def list_transfers(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(
        ["created", "destination", "transfer_group", "limit", "starting_after", "ending_before"]
    )
    destination = p.string("destination")
    group = p.string("transfer_group")
    items = ctx.state.all(
        "transfer",
        lambda t: (
            (destination is None or t["destination"] == destination)
            and (group is None or t["transfer_group"] == group)
        ),
    )
    return ctx.state.page(items, p, "/v1/transfers")


@route("POST", "/v1/transfers/{id}/reversals")
def create_reversal(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["amount", "description", "metadata", "refund_application_fee"])
    state = ctx.state
    transfer = state.get(ctx.arg("id"), "transfer")
    remaining = transfer["amount"] - transfer["amount_reversed"]
    amount = p.integer("amount", minimum=1)
    if amount is None:
        amount = remaining
    if remaining <= 0:
        raise invalid(f"Transfer {transfer['id']} has already been fully reversed.")
    if amount > remaining:
        raise invalid(
            f"Reversal amount ({amount}) is greater than the amount not yet reversed on the "
            f"transfer ({remaining}).",
            param="amount",
        )
    return _reverse(state, transfer, amount, apply_metadata({}, p.metadata()))


@route("GET", "/v1/transfers/{id}/reversals")
def list_reversals(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["limit", "starting_after", "ending_before"])
    transfer = ctx.state.get(ctx.arg("id"), "transfer")
    items = ctx.state.all("transfer_reversal", lambda r: r["transfer"] == transfer["id"])
    return ctx.state.page(items, p, f"/v1/transfers/{transfer['id']}/reversals")
