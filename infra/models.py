"""SQL tables (SQLModel `table=True`). Request and response shapes live in `api/schemas.py`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from domain.payments import PaymentStatus, RefundStatus
from domain.rides import DRIVER_ACTIVE, OPEN
from infra.db import UTCDateTime, utcnow


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default_factory=utcnow if not nullable else None,
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


def _opt_ts() -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=True))


def _in(states: frozenset[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in sorted(states)) + ")"


def _partial(name: str, column: str, where: str, *, unique: bool = False) -> Index:
    """An index of the rows matching `where` only, on both backends."""
    return Index(
        name,
        column,
        unique=unique,
        postgresql_where=text(where),
        sqlite_where=text(where),
    )


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))
    name: str = Field(max_length=200)
    role: str = Field(max_length=16)
    password_hash: str
    # sha256 of the secret a tracking app without headers sends as its device id
    device_key_hash: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True, unique=True)
    )
    stripe_customer_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True, unique=True)
    )
    promotions: bool = False  # opted in to promotional pushes (ride and payment ones: always)
    # a driver's Stripe Connect account, where their statements are paid
    stripe_account_id: str | None = Field(
        default=None, sa_column=Column(String(64), nullable=True, unique=True)
    )
    created_at: datetime = _ts()


class Ride(SQLModel, table=True):
    __tablename__ = "rides"
    __table_args__ = (
        # A passenger holds at most one open ride, a driver at most one active one,
        # even under concurrent requests: the database says no, not just the code.
        _partial("uq_rides_open_per_passenger", "passenger_id", _in(OPEN), unique=True),
        _partial("uq_rides_active_per_driver", "driver_id", _in(DRIVER_ACTIVE), unique=True),
        Index("ix_rides_passenger_created", "passenger_id", "created_at"),
        Index("ix_rides_driver_created", "driver_id", "created_at"),
        Index("ix_rides_status_created", "status", "created_at"),
        _partial("ix_rides_dispatch_due", "dispatch_deadline", "status = 'requested'"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    status: str = Field(max_length=16)
    passenger_id: uuid.UUID = Field(foreign_key="users.id")
    driver_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    pickup_lat: float
    pickup_lng: float
    dropoff_lat: float
    dropoff_lng: float
    payment: str = Field(max_length=8)
    payment_method_id: str | None = Field(default=None, max_length=255)
    currency: str = Field(max_length=3)
    estimate_amount: int
    estimate_distance_m: int
    estimate_duration_s: int
    fare_amount: int | None = None
    fee_amount: int | None = None
    distance_m: int | None = None
    duration_s: int | None = None
    accepted_at: datetime | None = _opt_ts()
    arrived_at: datetime | None = _opt_ts()
    started_at: datetime | None = _opt_ts()
    completed_at: datetime | None = _opt_ts()
    cancelled_at: datetime | None = _opt_ts()
    cancelled_by: str | None = Field(default=None, max_length=16)
    cancel_reason: str | None = Field(default=None, max_length=500)
    route_polyline: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # dispatch: the wave in flight and when it is due to move on (swept by beat)
    dispatch_wave: int = 0
    dispatch_deadline: datetime | None = _opt_ts()
    path_points: int | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Offer(SQLModel, table=True):
    """A requested ride offered to one driver, until accepted, declined, expired or withdrawn."""

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("ride_id", "driver_id", name="uq_offers_ride_driver"),
        # a driver holds at most one open offer, whatever the races
        _partial("uq_offers_pending_per_driver", "driver_id", "status = 'pending'", unique=True),
        Index("ix_offers_ride_status", "ride_id", "status"),
        _partial("ix_offers_pending_expiry", "expires_at", "status = 'pending'"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    ride_id: uuid.UUID = Field(foreign_key="rides.id")
    driver_id: uuid.UUID = Field(foreign_key="users.id")
    wave: int
    distance_m: int
    status: str = Field(max_length=16)
    created_at: datetime = _ts()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    decided_at: datetime | None = _opt_ts()


class Payment(SQLModel, table=True):
    """One money movement with Stripe for a ride: its authorization (held at request,
    captured at completion), an extra charge, or a fee. Mirrors the PaymentIntent."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("ride_id", "kind", name="uq_payments_ride_kind"),
        Index("ix_payments_passenger_status", "passenger_id", "status"),
        # the ops page's counts by status, and the sweep of payments stuck in a status
        Index("ix_payments_status_created", "status", "created_at"),
        Index("ix_payments_status_updated", "status", "updated_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    ride_id: uuid.UUID = Field(foreign_key="rides.id")
    passenger_id: uuid.UUID = Field(foreign_key="users.id")
    kind: str = Field(max_length=24)  # domain.payments.PaymentKind
    status: str = Field(default=PaymentStatus.PENDING, max_length=24)
    amount: int
    amount_received: int = 0
    amount_refunded: int = 0
    currency: str = Field(max_length=3)
    payment_method_id: str | None = Field(default=None, max_length=255)
    stripe_payment_intent_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    risk_level: str | None = Field(default=None, max_length=32)
    risk_score: int | None = None
    failure_code: str | None = Field(default=None, max_length=64)
    failure_message: str | None = Field(default=None, max_length=500)
    # an authorization lapses at Stripe then (its charge's `capture_before`)
    capture_before: datetime | None = _opt_ts()
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Refund(SQLModel, table=True):
    __tablename__ = "refunds"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    payment_id: uuid.UUID = Field(foreign_key="payments.id", index=True)
    amount: int
    currency: str = Field(max_length=3)
    reason: str = Field(max_length=500)
    status: str = Field(default=RefundStatus.PENDING, max_length=24)
    stripe_refund_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    requested_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Settlement(SQLModel, table=True):
    """A driver's statement for one UTC day, derived from the ledger, made once."""

    __tablename__ = "settlements"
    __table_args__ = (
        UniqueConstraint("driver_id", "period", "currency", name="uq_settlements_driver_period"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    driver_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    period: str = Field(max_length=10)  # YYYY-MM-DD (UTC)
    currency: str = Field(max_length=3)
    earned: int  # fares and fees, less commission
    cash_held: int  # cash the driver took, which belongs to the platform
    net: int  # earned - cash_held: paid to the driver, or (< 0) owed by them
    rides: int
    created_at: datetime = _ts()
    # the payout (domain.payouts): net + carried_in is paid when positive, else carried on
    carried_in: int = 0  # the previous statement's carry_out (<= 0)
    payout_amount: int = 0
    carry_out: int = 0
    payout_status: str = Field(default="pending", max_length=16, index=True)
    payout_attempts: int = 0  # attempts Stripe refused (each gets its own transfer key)
    payout_tried_at: datetime | None = _opt_ts()
    payout_error: str | None = Field(default=None, max_length=200)
    transfer_id: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, unique=True)
    )
    paid_at: datetime | None = _opt_ts()


class WebhookEvent(SQLModel, table=True):
    """A Stripe event, stored once by its id; a worker reconciles from Stripe's state."""

    __tablename__ = "webhook_events"
    # the sweep of events not processed in time looks only at those
    __table_args__ = (
        _partial("ix_webhook_events_unprocessed", "received_at", "processed_at IS NULL"),
    )

    id: str = Field(sa_column=Column(String(255), primary_key=True))
    type: str = Field(max_length=100)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    received_at: datetime = _ts()
    processed_at: datetime | None = _opt_ts()
    result: str | None = Field(default=None, max_length=200)


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a mutating request, replayed for the same key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    key: str = Field(max_length=255)
    endpoint: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(index=True)


class OutboxMessage(SQLModel, table=True):
    """A job committed with the state change it follows; sent after commit, swept if lost."""

    __tablename__ = "outbox"
    __table_args__ = (
        _partial("ix_outbox_pending", "created_at", "completed_at IS NULL AND failed_at IS NULL"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    task: str = Field(max_length=200)
    task_kwargs: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    created_at: datetime = _ts()
    dispatched_at: datetime | None = _opt_ts()
    completed_at: datetime | None = _opt_ts()
    failed_at: datetime | None = _opt_ts()
    last_error: str | None = None


class JournalEntryRow(SQLModel, table=True):
    __tablename__ = "journal_entries"

    id: int | None = Field(default=None, primary_key=True)
    # the unique key is what makes a duplicate posting impossible
    key: str = Field(sa_column=Column(String(200), nullable=False, unique=True))
    kind: str = Field(max_length=50)
    ride_id: uuid.UUID | None = Field(default=None, foreign_key="rides.id", index=True)
    created_at: datetime = _ts()


class LedgerLine(SQLModel, table=True):
    __tablename__ = "ledger_lines"

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="journal_entries.id", index=True)
    account: str = Field(max_length=100, index=True)
    amount: int
    currency: str = Field(max_length=3)


class Rating(SQLModel, table=True):
    """One side of a completed ride rating the other, once (the unique key says so)."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("ride_id", "rater_id", name="uq_ratings_ride_rater"),
        Index("ix_ratings_ratee_created", "ratee_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    ride_id: uuid.UUID = Field(foreign_key="rides.id")
    rater_id: uuid.UUID = Field(foreign_key="users.id")
    ratee_id: uuid.UUID = Field(foreign_key="users.id")
    ratee_side: str = Field(max_length=16)  # domain.ratings.RatedSide
    stars: int
    comment: str | None = Field(default=None, max_length=500)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()


class RatingSummary(SQLModel, table=True):
    """A user's ratings added up by the `ratings.aggregate` worker, recomputed from all
    of them each time."""

    __tablename__ = "rating_summaries"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True)
    side: str = Field(max_length=16)
    average: float
    raw_average: float | None = None
    smoothed: bool
    count: int
    distribution: dict[str, int] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts()


class RatingAlert(SQLModel, table=True):
    """A driver whose average fell under the line; closed when it is back above."""

    __tablename__ = "rating_alerts"
    __table_args__ = (
        _partial("uq_rating_alerts_open_per_user", "user_id", "closed_at IS NULL", unique=True),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    average: float
    count: int
    created_at: datetime = _ts()
    closed_at: datetime | None = _opt_ts()


class Device(SQLModel, table=True):
    """An FCM registration token of a user's device; a token belongs to one user at a time
    (registered again, it moves to its new owner)."""

    __tablename__ = "devices"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    token: str = Field(sa_column=Column(String(4096), nullable=False, unique=True))
    platform: str = Field(max_length=8)  # android | ios | web
    created_at: datetime = _ts()


class Notification(SQLModel, table=True):
    """One entry of a user's notification log: what they were told, and whether it went
    out. A ride event tells each user a kind of thing once (the unique key)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "key", name="uq_notifications_user_key"),
        Index("ix_notifications_user_created", "user_id", "created_at"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    ride_id: uuid.UUID | None = Field(default=None, foreign_key="rides.id")
    kind: str = Field(max_length=32)  # domain.notifications.NotificationKind
    key: str = Field(max_length=200)  # what it is about, told once per user
    title: str = Field(max_length=200)
    body: str = Field(max_length=1000)
    data: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    high_priority: bool = False
    data_only: bool = False
    collapse_key: str | None = Field(default=None, max_length=100)
    ttl_s: int = 3600
    status: str = Field(default="queued", max_length=16)  # NotificationStatus
    error: str | None = Field(default=None, max_length=200)
    created_at: datetime = _ts()
    sent_at: datetime | None = _opt_ts()


class Delivery(SQLModel, table=True):
    """One notification to one device token: sent at most once (the unique key), its FCM
    answer recorded."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "token", name="uq_deliveries_notification_token"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    notification_id: uuid.UUID = Field(foreign_key="notifications.id", index=True)
    token: str = Field(sa_column=Column(String(4096), nullable=False))
    # pending|sending|sent|gone|failed|unknown (the answer never came: not sent again)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    message_id: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, max_length=200)
    updated_at: datetime = _ts()


class Broadcast(SQLModel, table=True):
    """A promotional push an admin sent to every user who opted in; planned in batches of
    users (`cursor`: the last user id planned), delivered on the low-priority path."""

    __tablename__ = "broadcasts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    title: str = Field(max_length=200)
    body: str = Field(max_length=1000)
    planned: bool = False  # every opted-in user has their log entry
    cursor: uuid.UUID | None = None
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = _ts()
