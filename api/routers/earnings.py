"""Cash collected by drivers and the drivers' view of the ledger."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from api.deps import CurrentDriver, UowDep, ViewsDep
from api.errors import ApiError, error_responses
from api.pagination import DEFAULT_LIMIT, Cursor, Limit, PageDep
from api.schemas import Page
from domain.ledger import Account
from domain.payouts import PayoutStatus
from domain.usecases import payments as use
from domain.usecases import views

router = APIRouter(prefix="/api/v1", tags=["payments"], responses=error_responses(401, 403))


class CashIn(BaseModel):
    """The cash the driver took for a cash ride."""

    amount: int = Field(ge=0, description="what the driver took, in minor units")


class CashOut(BaseModel):
    """The cash recorded for a ride, against its fare."""

    ride_id: uuid.UUID = Field(description="The ride.")
    amount: int = Field(description="What the driver took, minor units.")
    currency: str = Field(description="ISO 4217, lower case.")
    fare: int = Field(description="The ride's fare.")
    difference: int = Field(description="amount - fare: positive overpaid, negative short")


@router.post(
    "/rides/{ride_id}/cash-collected",
    status_code=201,
    response_model=CashOut,
    responses=error_responses(404, 409),
)
def cash_collected(
    ride_id: uuid.UUID, body: CashIn, caller: CurrentDriver, uow: UowDep
) -> JSONResponse:
    """Record the cash a driver took for a completed cash ride (once; a replay of the same
    amount answers 200)."""
    record, new = use.collect_cash(uow, caller, ride_id, body.amount)
    out = CashOut(
        ride_id=record.ride_id,
        amount=record.amount,
        currency=record.currency,
        fare=record.fare,
        difference=record.difference,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=201 if new else 200)


class Side(StrEnum):
    """Which of the driver's two balances a line moves."""

    EARNED = "earned"
    CASH_HELD = "cash_held"


class EarningLine(BaseModel):
    """One ledger line on the driver's accounts."""

    entry: str = Field(description="The journal entry's key: the event that posted it.")
    kind: str = Field(description="What the entry records, e.g. `fare_captured`, `cash_collected`.")
    account: Side = Field(
        description="`earned`: what the platform owes the driver; `cash_held`: platform money "
        "the driver has in hand."
    )
    amount: int = Field(description="Minor units, signed: positive raises that balance.")
    currency: str = Field(description="ISO 4217, lower case.")
    ride_id: uuid.UUID | None = Field(description="The ride the line is for, if any.")
    posted_at: datetime = Field(description="When the entry was posted.")


class Balance(BaseModel):
    """The driver's position in one currency, from the ledger."""

    currency: str = Field(description="ISO 4217, lower case.")
    earned: int = Field(description="Owed to the driver for fares and fees, less commission.")
    cash_held: int = Field(description="Cash the driver took that belongs to the platform.")
    net_payable: int = Field(
        description="`earned - cash_held`: paid out when positive; below 0 the driver owes the "
        "platform (commission on cash rides)."
    )


class EarningsPage(Page[EarningLine]):
    """The driver's balances and the ledger lines behind them, newest first."""

    balances: list[Balance] = Field(description="One per currency the driver has lines in.")


@router.get("/drivers/me/earnings", response_model=EarningsPage, responses=error_responses(400))
def earnings(
    caller: CurrentDriver, read: ViewsDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> EarningsPage:
    """Balances derived from the ledger (per currency) and the lines behind them, newest
    first. `net_payable` < 0 means the driver owes the platform (commission on cash)."""
    try:
        before = int(cursor) if cursor else None
    except ValueError as exc:
        raise ApiError(400, "invalid cursor", "invalid_cursor") from exc
    found = views.driver_earnings(read, caller, before, limit)
    cash = str(Account.CASH_HELD_BY_DRIVER)
    items = [
        EarningLine(
            entry=p.entry_key,
            kind=p.kind,
            account=Side.CASH_HELD if p.account.startswith(cash) else Side.EARNED,
            amount=p.amount if p.account.startswith(cash) else -p.amount,
            currency=p.currency,
            ride_id=p.ride_id,
            posted_at=p.posted_at,
        )
        for p in found.postings
    ]
    return EarningsPage(
        balances=[Balance(currency=c, **position) for c, position in found.balances.items()],
        items=items,
        next_cursor=str(found.next_before) if found.next_before is not None else None,
    )


class Payout(BaseModel):
    """What was done with a statement's net."""

    status: PayoutStatus = Field(
        description="`paid`: transferred to the driver's payout account; `pending`: not tried "
        "yet; `payable`: not paid yet (e.g. no payout account), tried again; `carried`: "
        "nothing to pay, what the driver owes is taken from the next statement."
    )
    carried_in: int = Field(description="The previous statement's `carried_out` (0 or below).")
    amount: int = Field(description="What is paid: `net + carried_in` when positive, else 0.")
    carried_out: int = Field(description="What the next statement takes over (0 or below).")
    transfer_id: str | None = Field(description="Stripe's transfer, once paid.")
    paid_at: datetime | None = Field(description="When the transfer was made.")
    error: str | None = Field(description="Why the last attempt failed, while `payable`.")


class Statement(BaseModel):
    """A driver's statement for one UTC day, derived from the ledger."""

    id: uuid.UUID = Field(description="The statement's id.")
    period: str = Field(description="The UTC day, `YYYY-MM-DD`.", examples=["2026-12-04"])
    currency: str = Field(description="ISO 4217, lower case.")
    earned: int = Field(description="Fares and fees of the day, less commission (minor units).")
    cash_held: int = Field(description="Cash taken that day that belongs to the platform.")
    net: int = Field(description="`earned - cash_held`.")
    rides: int = Field(description="Rides the day's lines came from.")
    created_at: datetime = Field(description="When the statement was made.")
    payout: Payout = Field(description="Its payout.")


class StatementPage(Page[Statement]):
    """Statements, newest first."""


@router.get("/drivers/me/settlements", response_model=StatementPage, responses=error_responses(400))
def settlements(caller: CurrentDriver, read: ViewsDep, ask: PageDep) -> StatementPage:
    """Daily statements, newest first (made by the `payments.settle_day` beat job), each
    with its payout: `paid` (a transfer to the driver's payout account), `pending`,
    `payable` (not paid yet, e.g. no payout account: tried again), or `carried` (nothing
    to pay; what the driver owes is taken from the next statement)."""
    rows = read.statements_of(caller.id, ask.before, ask.fetch)
    items, next_cursor = ask.page(rows, _statement)
    return StatementPage(items=items, next_cursor=next_cursor)


def _statement(r: Any) -> Statement:
    return Statement(
        id=r.id,
        period=r.period,
        currency=r.currency,
        earned=r.earned,
        cash_held=r.cash_held,
        net=r.net,
        rides=r.rides,
        created_at=r.created_at,
        payout=Payout(
            status=PayoutStatus(r.payout_status),
            carried_in=r.carried_in,
            amount=r.payout_amount,
            carried_out=r.carry_out,
            transfer_id=r.transfer_id,
            paid_at=r.paid_at,
            error=r.payout_error,
        ),
    )


class PayoutAccountOut(BaseModel):
    """A link to Stripe's onboarding of the driver's payout account."""

    url: str = Field(description="Stripe's onboarding page for the driver's payout account")


@router.post(
    "/drivers/me/payout-account", response_model=PayoutAccountOut, responses=error_responses(503)
)
def payout_account(caller: CurrentDriver, uow: UowDep) -> PayoutAccountOut:
    """A link to set up (or finish setting up) the Stripe Connect account statements are
    paid to. The account is made on the first call; each call gives a fresh link (they
    expire within minutes)."""
    return PayoutAccountOut(url=use.payout_account_link(uow, caller))


_ONBOARDING = {
    "done": "Your payout account is set up. You can return to the app.",
    "expired": "This link has expired. Open payouts in the app to get a new one.",
}


@router.get("/payouts/onboarding", include_in_schema=False, response_class=HTMLResponse)
def onboarding_return(state: str = "done") -> str:
    """Where Stripe sends the driver back after onboarding (or when the link expired)."""
    text = _ONBOARDING.get(state, _ONBOARDING["done"])
    return (
        "<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        f"<title>ridehail payouts</title><p>{text}</p>"
    )
