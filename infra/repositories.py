"""SQL (and after-commit Redis) implementations of the use cases' ports, bound to one
session, that is one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID

from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from domain.errors import Conflict
from domain.ledger import Account, JournalEntry, Line
from domain.pings import PingRules
from domain.rides import DRIVER_ACTIVE, OPEN, RideEvent, RideState
from domain.trip import PathPoint, travelled_distance_m
from domain.usecases.ports import Posting, RideQuery
from infra import jobs
from infra.db import newest_first
from infra.live.keys import iso
from infra.live.rides import LiveRide, LiveRides, ride_facts_fields
from infra.models import JournalEntryRow, LedgerLine, Ride, Settlement
from infra.redis import get_sync_redis

_UNIQUE_CONFLICTS = {
    "uq_rides_open_per_passenger": ("you already have an open ride", "ride_already_open"),
    "uq_rides_active_per_driver": ("you are already on a ride", "driver_busy"),
}


def _conflict_from(exc: IntegrityError) -> Conflict:
    text = str(exc.orig)
    for name, (detail, code) in _UNIQUE_CONFLICTS.items():
        if name in text:
            return Conflict(detail, code=code)
    return Conflict("conflicting update", code="conflict")


class SqlRideRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, ride_id: UUID, *, for_update: bool = False) -> RideState | None:
        stmt = select(Ride).where(Ride.id == ride_id)
        if for_update:
            stmt = stmt.with_for_update()
        return cast(RideState | None, self.session.exec(stmt).first())

    def open_ride_of_passenger(self, passenger_id: UUID) -> RideState | None:
        stmt = select(Ride).where(Ride.passenger_id == passenger_id, col(Ride.status).in_(OPEN))
        return cast(RideState | None, self.session.exec(stmt).first())

    def active_ride_of_driver(self, driver_id: UUID) -> RideState | None:
        stmt = select(Ride).where(Ride.driver_id == driver_id, col(Ride.status).in_(DRIVER_ACTIVE))
        return cast(RideState | None, self.session.exec(stmt).first())

    def create(self, **fields: Any) -> RideState:
        ride = Ride(**fields)
        self.session.add(ride)
        self._flush()
        return cast(RideState, ride)

    def save(self, ride: RideState) -> None:
        self.session.add(ride)
        self._flush()

    def page(self, query: RideQuery) -> list[RideState]:
        """Newest first, keyset-paginated on (created_at, id)."""
        stmt = select(Ride)
        if query.passenger_id is not None:
            stmt = stmt.where(Ride.passenger_id == query.passenger_id)
        if query.driver_id is not None:
            stmt = stmt.where(Ride.driver_id == query.driver_id)
        if query.status is not None:
            stmt = stmt.where(Ride.status == query.status)
        stmt = newest_first(stmt, Ride, query.before, query.limit)
        return cast(list[RideState], list(self.session.exec(stmt).all()))

    def _flush(self) -> None:
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise _conflict_from(exc) from exc


class OutboxJobs:
    def __init__(self, session: Session) -> None:
        self.session = session

    def enqueue(self, task: str, **kwargs: Any) -> None:
        jobs.enqueue(self.session, task, **kwargs)

    def run_here(self, task: str, work: Callable[[], None], **kwargs: Any) -> None:
        jobs.run_here(self.session, task, work, **kwargs)


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

    def balances_of(self, accounts: list[str]) -> dict[tuple[str, str], int]:
        rows = self.session.exec(
            select(LedgerLine.account, LedgerLine.currency, func.sum(LedgerLine.amount))
            .where(col(LedgerLine.account).in_(accounts))
            .group_by(col(LedgerLine.account), col(LedgerLine.currency))
        ).all()
        return {(a, c): int(total) for a, c, total in rows}

    def postings(self, accounts: list[str], before_line: int | None, limit: int) -> list[Posting]:
        stmt = (
            sa_select(
                col(LedgerLine.id),
                col(JournalEntryRow.key),
                col(JournalEntryRow.kind),
                col(LedgerLine.account),
                col(LedgerLine.amount),
                col(LedgerLine.currency),
                col(JournalEntryRow.ride_id),
                col(JournalEntryRow.created_at),
            )
            .join(JournalEntryRow, col(JournalEntryRow.id) == col(LedgerLine.entry_id))
            .where(col(LedgerLine.account).in_(accounts))
        )
        if before_line is not None:
            stmt = stmt.where(col(LedgerLine.id) < before_line)
        rows = self.session.execute(stmt.order_by(col(LedgerLine.id).desc()).limit(limit)).all()
        return [Posting(*row) for row in rows]

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


_FACTS = (
    "id",
    "passenger_id",
    "driver_id",
    "status",
    "pickup_lat",
    "pickup_lng",
    "dropoff_lat",
    "dropoff_lng",
    "updated_at",
)


def _facts(ride: RideState) -> SimpleNamespace:
    return SimpleNamespace(**{name: getattr(ride, name) for name in _FACTS})


def status_event(ride_id: UUID | str, status: str, at: datetime) -> dict[str, str]:
    return {"ride_id": str(ride_id), "status": str(status), "at": iso(at.timestamp())}


class RedisLivePublisher:
    """What tells Redis of a ride's new state: run by the unit of work once the transaction
    has committed (never before: a client must not see a status that could still roll
    back). Idempotent and order-safe, so the outbox may repeat it."""

    def ride_changed(self, ride: RideState, event: RideEvent) -> Callable[[], None]:
        facts, payload = _facts(ride), status_event(ride.id, event.status, event.at)

        def publish() -> None:
            LiveRides(get_sync_redis()).ride_changed(facts, payload)

        return publish


class RedisTripPaths:
    def __init__(self, rules: PingRules) -> None:
        self.rules = rules

    def points(self, ride_id: UUID, since: datetime | None = None) -> list[PathPoint]:
        """The ride's recorded fixes that arrived from `since` (its start) on. The hot path
        records from the pickup on, with each fix's arrival time by the server's clock, so
        that a start it learns of late (a Redis restart delaying the publish) loses
        nothing, and fixes sent while waiting at the pickup are left out here."""
        out = []
        start = since.timestamp() if since is not None else None
        for raw in LiveRides(get_sync_redis()).trip_path(str(ride_id)):
            t, lat, lng, acc, *arrived = raw.split(",")
            if start is not None and arrived and float(arrived[0]) < start:
                continue
            out.append(PathPoint(float(t), float(lat), float(lng), float(acc) if acc else None))
        return out

    def travelled_m(self, ride_id: UUID, since: datetime | None = None) -> int | None:
        return travelled_distance_m(
            self.points(ride_id, since), max_speed_ms=self.rules.max_speed_ms
        )


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
    def __init__(self, session: Session) -> None:
        self.session = session

    def of_driver(self, driver_id: UUID, limit: int = 100) -> list[Settlement]:
        return list(
            self.session.exec(
                select(Settlement)
                .where(Settlement.driver_id == driver_id)
                .order_by(col(Settlement.period).desc())
                .limit(limit)
            ).all()
        )


def ride_facts_from_sql(ride_id: str) -> LiveRide | None:
    """A ride's facts from SQL when Redis lost them (an old ride, a flushed Redis); they go
    back to Redis for the next reader."""
    from infra.db import session_scope

    try:
        rid = UUID(ride_id)
    except ValueError:
        return None
    with session_scope() as session:
        ride = session.get(Ride, rid)
        if ride is None:
            return None
        facts = _facts(ride)
    LiveRides(get_sync_redis()).ride_changed(facts, None)
    return LiveRide.from_hash(ride_facts_fields(facts))
