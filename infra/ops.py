"""The ops page's figures, read where they live: rides and payments by status and the open
low-rating alerts from SQL, the queues and online drivers from Redis. An admin's view,
read every few seconds by one page: plain grouped counts over indexed columns."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.payments import PaymentStatus
from domain.rides import OPEN, RideStatus
from infra.db import utcnow
from infra.live.keys import Keys
from infra.metrics import queue_lengths
from infra.models import Payment, RatingAlert, Ride, User
from infra.redis import get_sync_redis


class SqlOpsView:
    """The use cases' `OpsView` port."""

    def __init__(self, session: Session) -> None:
        self.session = session

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
        online = get_sync_redis().zcard(Keys.GEO)
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
