"""Cash collected by drivers and the drivers' view of the ledger."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import CurrentDriver, UowDep
from api.errors import ApiError, error_responses
from domain.ledger import Account, driver_position
from domain.usecases import payments as use
from infra.repositories import driver_accounts, driver_ledger_lines, settlements_of

router = APIRouter(prefix="/api/v1", tags=["payments"], responses=error_responses(401, 403))


class CashIn(BaseModel):
    amount: int = Field(ge=0, description="what the driver took, in minor units")


class CashOut(BaseModel):
    ride_id: uuid.UUID
    amount: int
    currency: str
    fare: int
    difference: int = Field(description="amount - fare: positive overpaid, negative short")


@router.post("/rides/{ride_id}/cash-collected", status_code=201, response_model=CashOut)
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


@router.get("/drivers/me/earnings")
def earnings(
    caller: CurrentDriver,
    uow: UowDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Balances derived from the ledger (per currency) and the lines behind them, newest
    first. `net_payable` < 0 means the driver owes the platform (commission on cash)."""
    try:
        before = int(cursor) if cursor else None
    except ValueError as exc:
        raise ApiError(400, "invalid cursor", "invalid_cursor") from exc
    balances = uow.ledger.balances_of(driver_accounts(caller.id))
    currencies = sorted({c for _a, c in balances})
    rows = driver_ledger_lines(uow.session, caller.id, before, limit + 1)
    cash = str(Account.CASH_HELD_BY_DRIVER)
    items = [
        {
            "entry": key,
            "kind": kind,
            # earned: what the platform owes the driver; cash_held: platform money in hand
            "account": "cash_held" if acct.startswith(cash) else "earned",
            "amount": amount if acct.startswith(cash) else -amount,
            "currency": currency,
            "ride_id": str(ride) if ride else None,
            "posted_at": at.isoformat().replace("+00:00", "Z"),
        }
        for _id, key, kind, acct, amount, currency, ride, at in rows[:limit]
    ]
    return {
        "balances": [
            {"currency": c, **driver_position(balances, caller.id, c)} for c in currencies
        ],
        "items": items,
        "next_cursor": str(rows[limit - 1][0]) if len(rows) > limit else None,
    }


@router.get("/drivers/me/settlements")
def settlements(caller: CurrentDriver, uow: UowDep) -> dict[str, Any]:
    """Daily statements, newest first (made by the `payments.settle_day` beat job)."""
    rows = settlements_of(uow.session, caller.id)
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
                "created_at": r.created_at.isoformat().replace("+00:00", "Z"),
            }
            for r in rows
        ],
        "next_cursor": None,
    }
