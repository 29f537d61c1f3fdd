"""The `Views` port: what pages and apps only read, each one query on a read-only session.
The ops page's figures are read where they live: rides and payments by status and the
open low-rating alerts from SQL, the queues and online drivers from Redis (read every few
seconds by one page: plain grouped counts over indexed columns)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from domain.errors import NotFound
from domain.notifications import NotificationStatus
from domain.payments import PaymentStatus
from domain.rides import OPEN, RideStatus
from domain.usecases.ports import BroadcastProgress, Posting
from infra.db import newest_first, utcnow
from infra.live.positions import Positions
from infra.metrics import queue_lengths
from infra.models import (
    Broadcast,
    JournalEntryRow,
    LedgerLine,
    Notification,
    Payment,
    Rating,
    RatingAlert,
    RatingSummary,
    Ride,
    Settlement,
    User,
)
from infra.redis import get_sync_redis


class SqlViews:
    """The use cases' `Views` port, on one read-only session."""

    def __init__(self, session: Session) -> None:
        self.session = session

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

    def statements_of(
        self, driver_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Settlement]:
        mine = select(Settlement).where(Settlement.driver_id == driver_id)
        return list(self.session.exec(newest_first(mine, Settlement, before, limit)).all())

    def ratings_received(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Rating]:
        stmt = newest_first(select(Rating).where(Rating.ratee_id == user_id), Rating, before, limit)
        return list(self.session.exec(stmt).all())

    def rating_summary(self, user_id: UUID) -> RatingSummary | None:
        return self.session.get(RatingSummary, user_id)

    def open_rating_alerts(
        self, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[RatingAlert]:
        stmt = select(RatingAlert).where(col(RatingAlert.closed_at).is_(None))
        return list(self.session.exec(newest_first(stmt, RatingAlert, before, limit)).all())

    def wants_promotions(self, user_id: UUID) -> bool:
        user = self.session.get(User, user_id)
        return bool(user and user.promotions)

    def broadcast_progress(self, broadcast_id: UUID) -> BroadcastProgress:
        row = self.session.get(Broadcast, broadcast_id)
        if row is None:
            raise NotFound("broadcast not found", code="broadcast_not_found")
        rows = self.session.execute(
            select(Notification.status, func.count())
            .where(Notification.key == f"broadcast:{broadcast_id}")
            .group_by(Notification.status)
        ).all()
        counts: dict[str, int] = {str(status): int(n) for status, n in rows}
        return BroadcastProgress(
            id=row.id,
            planned=row.planned,
            recipients=sum(counts.values()),
            sent=counts.get(NotificationStatus.SENT, 0),
            queued=counts.get(NotificationStatus.QUEUED, 0),
        )

    def notifications_of(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Notification]:
        mine = select(Notification).where(Notification.user_id == user_id)
        return list(self.session.exec(newest_first(mine, Notification, before, limit)).all())

    def overview(self, since_h: int, active_limit: int) -> dict[str, Any]:
        since = utcnow() - timedelta(hours=since_h)
        s = self.session
        # one range of the (status, created_at) index per status, not a scan of the table
        rides = [
            (
                status,
                s.exec(
                    select(func.count()).where(Ride.status == status, col(Ride.created_at) >= since)
                ).one(),
            )
            for status in RideStatus
        ]
        payments = [
            (
                status,
                s.exec(
                    select(func.count()).where(
                        Payment.status == status, col(Payment.created_at) >= since
                    )
                ).one(),
            )
            for status in PaymentStatus
        ]
        alerts = s.exec(
            select(RatingAlert, User.name)
            .join(User, col(User.id) == col(RatingAlert.user_id))
            .where(col(RatingAlert.closed_at).is_(None))
            .order_by(col(RatingAlert.average))
            .limit(50)
        ).all()
        active = s.exec(
            select(Ride)
            .where(col(Ride.status).in_(list(OPEN)))
            .order_by(col(Ride.created_at).desc())
            .limit(active_limit)
        ).all()
        online = Positions(get_sync_redis()).online_count()
        return {
            "since_hours": since_h,
            "rides_by_status": {str(k): int(n) for k, n in rides if n},
            "payments_by_status": {str(k): int(n) for k, n in payments if n},
            "queues": queue_lengths(),
            "drivers_online": int(online),
            "rating_alerts": [
                {
                    "user_id": str(a.user_id),
                    "name": name,
                    "average": round(a.average, 2),
                    "count": a.count,
                    "since": a.created_at.isoformat().replace("+00:00", "Z"),
                }
                for a, name in alerts
            ],
            "active_rides": [
                {
                    "id": str(ride.id),
                    "status": ride.status,
                    "driver_id": str(ride.driver_id) if ride.driver_id else None,
                    "pickup": {"lat": ride.pickup_lat, "lng": ride.pickup_lng},
                    "dropoff": {"lat": ride.dropoff_lat, "lng": ride.dropoff_lng},
                }
                for ride in active
            ],
        }
