"""The double-entry ledger in SQL (the `Ledger` port: an entry posted once, by its key),
the driver-day lines settlement reads, and drivers' statements (`Statements`)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from domain.ledger import Account, JournalEntry, Line
from domain.payouts import OPEN_PAYOUTS
from domain.usecases.follow_ups import Handed
from domain.usecases.ports import NewStatement
from infra.db import utcnow
from infra.models import JournalEntryRow, LedgerLine, Settlement


class SqlLedger:
    def __init__(self, session: Session) -> None:
        self.session = session

    def post(self, entry: JournalEntry) -> bool:
        """Post `entry` once. Returns False if an entry with its key already exists.

        The savepoint lets a concurrent duplicate lose on the unique key without
        aborting the caller's transaction.
        """
        if self.session.exec(
            select(JournalEntryRow.id).where(JournalEntryRow.key == entry.key)
        ).first():
            return False
        try:
            with self.session.begin_nested():
                row = JournalEntryRow(key=entry.key, kind=entry.kind, ride_id=entry.ride_id)
                self.session.add(row)
                self.session.flush()
                assert row.id is not None
                for line in entry.lines:
                    self.session.add(
                        LedgerLine(
                            entry_id=row.id,
                            account=line.account,
                            amount=line.amount,
                            currency=line.currency,
                        )
                    )
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def entry_amount(self, key: str) -> int | None:
        """The debit total of the entry with this key (its size), if it exists."""
        rows = self.session.exec(
            select(LedgerLine.amount)
            .join(JournalEntryRow, col(JournalEntryRow.id) == col(LedgerLine.entry_id))
            .where(JournalEntryRow.key == key)
        ).all()
        return sum(a for a in rows if a > 0) if rows else None

    def lines(self, ride_id: UUID | None = None) -> list[Line]:
        stmt = select(LedgerLine.account, LedgerLine.amount, LedgerLine.currency).join(
            JournalEntryRow, col(JournalEntryRow.id) == col(LedgerLine.entry_id)
        )
        if ride_id is not None:
            stmt = stmt.where(JournalEntryRow.ride_id == ride_id)
        return [Line(a, amt, c) for a, amt, c in self.session.exec(stmt).all()]

    def balance(self, account: str, currency: str) -> int:
        total = self.session.exec(
            select(func.coalesce(func.sum(LedgerLine.amount), 0)).where(
                LedgerLine.account == account, LedgerLine.currency == currency
            )
        ).one()
        return int(total)


def driver_day_lines(
    session: Session, start: Any, end: Any
) -> list[tuple[str, str, int, UUID | None]]:
    """Every driver-account ledger line posted in [start, end): (account, currency,
    amount, ride id)."""
    stmt = (
        sa_select(
            col(LedgerLine.account),
            col(LedgerLine.currency),
            col(LedgerLine.amount),
            col(JournalEntryRow.ride_id),
        )
        .join(JournalEntryRow, col(JournalEntryRow.id) == col(LedgerLine.entry_id))
        .where(
            col(JournalEntryRow.created_at) >= start,
            col(JournalEntryRow.created_at) < end,
            col(JournalEntryRow.kind) != "payout",  # paying a statement is not earning
            col(LedgerLine.account).like(f"{Account.DRIVER_PAYABLE}:%")
            | col(LedgerLine.account).like(f"{Account.CASH_HELD_BY_DRIVER}:%"),
        )
    )
    return [tuple(r) for r in session.execute(stmt).all()]


class SqlStatements:
    """`Statements`: one row per driver, UTC day and currency (a unique key)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._handed = Handed("payout_status")

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._handed.changed()

    def driver_lines(
        self, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, UUID | None]]:
        return driver_day_lines(self.session, start, end)

    def carried_before(self, driver_id: UUID, currency: str, period: str) -> int:
        before = self.session.exec(
            select(Settlement.carry_out)
            .where(
                Settlement.driver_id == driver_id,
                Settlement.currency == currency,
                col(Settlement.period) < period,
            )
            .order_by(col(Settlement.period).desc())
            .limit(1)
        ).first()
        return before or 0

    def add_once(self, statement: NewStatement) -> bool:
        insert = (
            pg_insert if self.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        )
        table = Settlement.__table__  # type: ignore[attr-defined]
        stmt = (
            insert(table)
            .values(id=uuid4(), created_at=utcnow(), payout_attempts=0, **asdict(statement))
            .on_conflict_do_nothing(index_elements=["driver_id", "period", "currency"])
            .returning(table.c.id)
        )
        return self.session.execute(stmt).first() is not None

    def due(self, tried_before: datetime, limit: int) -> list[UUID]:
        return list(
            self.session.exec(
                select(Settlement.id)
                .where(
                    col(Settlement.payout_status).in_(OPEN_PAYOUTS),
                    col(Settlement.payout_tried_at).is_(None)
                    | (col(Settlement.payout_tried_at) < tried_before),
                )
                .order_by(col(Settlement.period))
                .limit(limit)
            ).all()
        )

    def get(self, statement_id: UUID) -> Settlement | None:
        return self._handed.out(self.session.get(Settlement, statement_id, with_for_update=True))

    def save(self, statement: Settlement) -> None:
        self.session.add(statement)
