"""The webhook inbox: one row per Stripe event id, a reconcile job only for a new one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from domain.jobs import Job
from infra import jobs
from infra.db import session_scope, utcnow
from infra.models import WebhookEvent


def store_event(session: Session, event_id: str, event_type: str, event: dict[str, Any]) -> bool:
    """Insert, on conflict do nothing; enqueue the reconcile job only when the row is new."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    table: Any = WebhookEvent.__table__  # type: ignore[attr-defined]
    stmt = (
        insert(table)
        .values(id=event_id, type=event_type, payload=event, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.id)
    )
    if session.execute(stmt).first() is None:  # it was there already
        return False
    jobs.enqueue(session, Job.RECONCILE_EVENT, event_id=event_id)
    return True


def store_new_event(event_id: str, event_type: str, event: dict[str, Any]) -> bool:
    """`store_event` in its own transaction."""
    with session_scope() as session:
        return store_event(session, event_id, event_type, event)


class SqlWebhookInbox:
    """`WebhookInbox`: Stripe's events as stored when they arrived."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, event_id: str) -> WebhookEvent | None:
        return self.session.get(WebhookEvent, event_id, with_for_update=True)

    def save(self, event: WebhookEvent) -> None:
        self.session.add(event)

    def unprocessed(self, received_before: datetime, limit: int) -> list[str]:
        return list(
            self.session.exec(
                select(WebhookEvent.id)
                .where(
                    col(WebhookEvent.processed_at).is_(None),
                    col(WebhookEvent.received_at) < received_before,
                )
                .order_by(col(WebhookEvent.received_at))
                .limit(limit)
            ).all()
        )
