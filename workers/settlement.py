"""Beat job: close each driver's day from the ledger, once per driver and period.

A statement: what the driver earned (card and cash fares and fees, less commission),
the cash they took (the platform's, in their pocket), and the net: paid to the driver,
or, when negative, the commission they owe on cash. Paying it out (Stripe Connect) is
the next step; the statement is the record it will be made from.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from domain.ledger import Account
from infra.db import utcnow
from infra.models import Settlement
from infra.repositories import driver_day_lines
from workers.base import transactional_task


@transactional_task("payments.settle_day", max_retries=3)
def settle_day(session: Session, period: str | None = None) -> int:
    day = date.fromisoformat(period) if period else (utcnow() - timedelta(days=1)).date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"earned": 0, "cash_held": 0}
    )
    rides: dict[tuple[str, str], set[str]] = defaultdict(set)
    for account, currency, amount, ride_id in driver_day_lines(
        session, start, start + timedelta(days=1)
    ):
        kind, _, driver = account.partition(":")
        key = (driver, currency)
        if kind == Account.DRIVER_PAYABLE:
            totals[key]["earned"] += -amount
        else:
            totals[key]["cash_held"] += amount
        if ride_id:
            rides[key].add(str(ride_id))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    made = 0
    table = Settlement.__table__  # type: ignore[attr-defined]
    for (driver, currency), t in totals.items():
        stmt = (
            insert(table)
            .values(
                id=uuid.uuid4(),
                driver_id=uuid.UUID(driver),
                period=day.isoformat(),
                currency=currency,
                earned=t["earned"],
                cash_held=t["cash_held"],
                net=t["earned"] - t["cash_held"],
                rides=len(rides[(driver, currency)]),
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["driver_id", "period", "currency"])
            .returning(table.c.id)
        )
        made += session.execute(stmt).first() is not None
    return made
