"""Cash collected by drivers and the drivers' view of the ledger."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from api.deps import CurrentDriver, UowDep, ViewsDep
from api.errors import ApiError, error_responses
from domain.ledger import Account
from domain.usecases import payments as use
from domain.usecases import views

router = APIRouter(prefix="/api/v1", tags=["payments"], responses=error_responses(401, 403))


class CashIn(BaseModel):
    amount: int = Field(ge=0, description="what the driver took, in minor units")


class CashOut(BaseModel):
    ride_id: uuid.UUID
    amount: int
    currency: str
    fare: int
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


@router.get("/drivers/me/earnings", responses=error_responses(400))
def earnings(
    caller: CurrentDriver,
    read: ViewsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Balances derived from the ledger (per currency) and the lines behind them, newest
    first. `net_payable` < 0 means the driver owes the platform (commission on cash)."""
    try:
        before = int(cursor) if cursor else None
    except ValueError as exc:
        raise ApiError(400, "invalid cursor", "invalid_cursor") from exc
    found = views.driver_earnings(read, caller, before, limit)
    cash = str(Account.CASH_HELD_BY_DRIVER)
    items = [
        {
            "entry": p.entry_key,
            "kind": p.kind,
            # earned: what the platform owes the driver; cash_held: platform money in hand
            "account": "cash_held" if p.account.startswith(cash) else "earned",
            "amount": p.amount if p.account.startswith(cash) else -p.amount,
            "currency": p.currency,
            "ride_id": str(p.ride_id) if p.ride_id else None,
            "posted_at": p.posted_at.isoformat().replace("+00:00", "Z"),
        }
        for p in found.postings
    ]
    return {
        "balances": [{"currency": c, **position} for c, position in found.balances.items()],
        "items": items,
        "next_cursor": str(found.next_before) if found.next_before is not None else None,
    }


def _ts(at: Any) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


@router.get("/drivers/me/settlements")
def settlements(caller: CurrentDriver, read: ViewsDep) -> dict[str, Any]:
    """Daily statements, newest first (made by the `payments.settle_day` beat job), each
    with its payout: `paid` (a transfer to the driver's payout account), `pending`,
    `payable` (not paid yet, e.g. no payout account: tried again), or `carried` (nothing
    to pay; what the driver owes is taken from the next statement)."""
    rows = read.statements_of(caller.id, limit=100)
    return {
        "items": [
            {
                "id": str(r.id),
                "period": r.period,
                "currency": r.currency,
                "earned": r.earned,
                "cash_held": r.cash_held,
                "net": r.net,
                "rides": r.rides,
                "created_at": _ts(r.created_at),
                "payout": {
                    "status": r.payout_status,
                    "carried_in": r.carried_in,
                    "amount": r.payout_amount,
                    "carried_out": r.carry_out,
                    "transfer_id": r.transfer_id,
                    "paid_at": _ts(r.paid_at),
                    "error": r.payout_error,
                },
            }
            for r in rows
        ],
        "next_cursor": None,
    }


class PayoutAccountOut(BaseModel):
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
