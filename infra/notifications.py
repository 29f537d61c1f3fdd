"""Devices, the notification log and broadcasts in SQL, and the deliveries of a logged
notification to each of its user's devices (`PushDeliveries`), once per device."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from domain.notifications import NotificationStatus, PlannedPush, promotion_push
from domain.usecases.ports import ComeBack
from infra.db import session_scope, utcnow
from infra.metrics import PUSHES
from infra.models import Broadcast, Delivery, Device, Notification, User
from infra.push import Push, PushOutcome, PushResult, send
from infra.push import ready as push_ready


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


BROADCAST_BATCH = 500


def next_promotions(
    session: Session, broadcast_id: uuid.UUID, batch: int = BROADCAST_BATCH
) -> tuple[list[PlannedPush], bool]:
    """The broadcast's promotions for the next batch of opted-in users (by id, after the
    cursor, which moves past them), and whether every opted-in user is planned then."""
    row = session.exec(
        select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()
    ).first()
    if row is None or row.planned:
        return [], True
    stmt = select(User.id).where(col(User.promotions).is_(True))
    if row.cursor is not None:
        stmt = stmt.where(col(User.id) > row.cursor)
    users = list(session.exec(stmt.order_by(col(User.id)).limit(batch)).all())
    row.cursor = users[-1] if users else row.cursor
    row.planned = len(users) < batch
    session.add(row)
    return [promotion_push(u, row.id, row.title, row.body) for u in users], row.planned


class SqlBroadcasts:
    def __init__(self, session: Session) -> None:
        self.session = session

    def next_batch(self, broadcast_id: uuid.UUID) -> tuple[list[PlannedPush], bool]:
        return next_promotions(self.session, broadcast_id)

    def create(self, title: str, body: str, created_by: uuid.UUID) -> uuid.UUID:
        row = Broadcast(title=title, body=body, created_by=created_by)
        self.session.add(row)
        self.session.flush()
        return row.id


class SqlDevices:
    def __init__(self, session: Session) -> None:
        self.session = session

    def register(self, user_id: uuid.UUID, token: str, platform: str) -> None:
        """The token is this user's now (a device that changed hands moves with it)."""
        table: Any = Device.__table__  # type: ignore[attr-defined]
        stmt = _insert(self.session)(table).values(
            id=uuid.uuid4(), user_id=user_id, token=token, platform=platform, created_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["token"], set_={"user_id": user_id, "platform": platform}
        )
        self.session.execute(stmt)

    def unregister(self, user_id: uuid.UUID, token: str) -> bool:
        result: Any = self.session.execute(
            delete(Device).where(col(Device.user_id) == user_id, col(Device.token) == token)
        )
        return bool(result.rowcount)

    def set_promotions(self, user_id: uuid.UUID, wanted: bool) -> None:
        user = self.session.get(User, user_id)
        if user is not None:
            user.promotions = wanted
            self.session.add(user)


def log_pushes(session: Session, pushes: list[PlannedPush]) -> list[tuple[uuid.UUID, str]]:
    """Log each planned push once (its key: a repeated job finds it there); the (id, kind)
    of each one logged now."""
    table: Any = Notification.__table__  # type: ignore[attr-defined]
    logged = []
    for p in pushes:
        new = session.execute(
            _insert(session)(table)
            .values(
                id=uuid.uuid4(),
                user_id=p.user_id,
                ride_id=p.ride_id,
                kind=p.kind,
                key=p.key,
                title=p.title,
                body=p.body,
                data=p.data,
                high_priority=p.high_priority,
                data_only=p.data_only,
                collapse_key=p.collapse_key,
                ttl_s=p.ttl_s,
                status=NotificationStatus.QUEUED,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["user_id", "key"])
            .returning(table.c.id)
        ).first()
        if new is not None:
            logged.append((new[0], str(p.kind)))
    return logged


class SqlPushDeliveries:
    """`PushDeliveries`: each (notification, device token) is one delivery row, each step
    in a transaction of its own. A token FCM calls dead is forgotten; an answer to come
    back puts the delivery back to `pending` (FCM took nothing); a send whose answer never
    came is `unknown` and never sent again (FCM may have delivered it)."""

    def message(self, notification_id: uuid.UUID) -> tuple[Push, list[str]] | None:
        with session_scope() as session:
            note = session.get(Notification, notification_id)
            if note is None:
                return None
            push = Push(
                title=note.title,
                body=note.body,
                data={**note.data, "notification_id": str(note.id)},
                high_priority=note.high_priority,
                data_only=note.data_only,
                collapse_key=note.collapse_key,
                ttl_s=note.ttl_s,
            )
            user_tokens = select(Device.token).where(Device.user_id == note.user_id)
            return push, list(session.exec(user_tokens).all())

    def ready(self) -> bool:
        return push_ready()

    def claim(self, notification_id: uuid.UUID, token: str) -> uuid.UUID | None:
        return _claim(notification_id, token)

    def send(self, delivery_id: uuid.UUID, token: str, push: Push) -> ComeBack | None:
        result = send(token, push)
        PUSHES.labels(result.outcome.value).inc()
        _record(delivery_id, token, result)
        return ComeBack(result.retry_after) if result.outcome is PushOutcome.RETRY else None

    def settle(self, notification_id: uuid.UUID, *, waiting: bool) -> None:
        _settle(notification_id, waiting=waiting)


# The push is out: its answer must be recorded, so a passing database error (SQLite's
# writer lock under load) is retried here rather than leaving the delivery claimed.
_db_retry = retry(
    retry=retry_if_exception_type(OperationalError),
    stop=stop_after_attempt(5),
    wait=wait_exponential_jitter(initial=0.1, max=2),
    reraise=True,
)


@_db_retry
def _record(delivery_id: uuid.UUID, token: str, result: PushResult) -> None:
    with session_scope() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.updated_at, row.error = utcnow(), result.error
        if result.outcome is PushOutcome.SENT:
            row.status, row.message_id = "sent", result.message_id
        elif result.outcome is PushOutcome.GONE:
            row.status = "gone"
            session.execute(delete(Device).where(col(Device.token) == token))
        elif result.outcome is PushOutcome.FAILED:
            row.status = "failed"
        elif result.outcome is PushOutcome.UNKNOWN:
            row.status = "unknown"  # maybe delivered: at most once, so never again
        else:
            row.status = "pending"  # FCM took nothing: a later attempt sends it
        session.add(row)


def _claim(notification_id: uuid.UUID, token: str) -> uuid.UUID | None:
    table: Any = Delivery.__table__  # type: ignore[attr-defined]
    with session_scope() as session:
        session.execute(
            _insert(session)(table)
            .values(
                id=uuid.uuid4(), notification_id=notification_id, token=token, updated_at=utcnow()
            )
            .on_conflict_do_nothing(index_elements=["notification_id", "token"])
        )
        row = session.exec(
            select(Delivery)
            .where(Delivery.notification_id == notification_id, Delivery.token == token)
            .with_for_update()
        ).one()
        if row.status != "pending":
            return None
        row.status, row.attempts, row.updated_at = "sending", row.attempts + 1, utcnow()
        session.add(row)
        return row.id


@_db_retry
def _settle(notification_id: uuid.UUID, *, waiting: bool) -> None:
    """The log entry's status from its deliveries: sent once any device took it."""
    with session_scope() as session:
        note = session.exec(
            select(Notification).where(Notification.id == notification_id).with_for_update()
        ).one()
        statuses = session.exec(
            select(Delivery.status).where(Delivery.notification_id == notification_id)
        ).all()
        if "sent" in statuses:
            note.status, note.sent_at = NotificationStatus.SENT, note.sent_at or utcnow()
        elif not waiting and "unknown" in statuses:
            note.status = NotificationStatus.UNKNOWN
            note.error = "FCM's answer never came: maybe delivered, not sent again"
        elif not waiting and "sending" in statuses:
            # claimed by a sender that stopped before recording FCM's answer (killed, or
            # still at it: its own settling comes after this one)
            note.status = NotificationStatus.UNKNOWN
            note.error = "the sender stopped while sending: maybe delivered, not sent again"
        elif not waiting:
            note.status = NotificationStatus.FAILED
            note.error = "no device took it" if statuses else "no registered device"
        session.add(note)


class SqlPushLog:
    """`PushLog`: planned pushes into the notification log, each one logged now kept for
    the unit of work, which queues its delivery (`follow_ups.collect`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._new: list[tuple[uuid.UUID, str]] = []

    def log(self, pushes: list[PlannedPush]) -> None:
        self._new += log_pushes(self.session, pushes)

    def just_logged(self) -> list[tuple[uuid.UUID, str]]:
        new, self._new = self._new, []
        return new
