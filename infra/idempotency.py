"""The stored first answers of idempotent requests (`Idempotency-Key`)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from infra.models import IdempotencyRecord


def find_answer(
    session: Session, user_id: UUID, key: str
) -> tuple[str, str, int, dict[str, Any]] | None:
    """(endpoint, request hash, status, body) of the first request with this key."""
    record = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    ).first()
    if record is None:
        return None
    return record.endpoint, record.request_hash, record.status_code, record.response_body


def store_answer(
    session: Session,
    user_id: UUID,
    key: str,
    endpoint: str,
    request_hash: str,
    status_code: int,
    response: dict[str, Any],
) -> bool:
    """Remember the answer with the work's transaction; False if a concurrent request with
    the same key got there first."""
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            key=key,
            endpoint=endpoint,
            request_hash=request_hash,
            status_code=status_code,
            response_body=response,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        return False
    return True


class SqlIdempotency:
    """`find_answer` / `store_answer` on the unit of work's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, user_id: UUID, key: str) -> tuple[str, str, int, dict[str, Any]] | None:
        return find_answer(self.session, user_id, key)

    def store(
        self,
        user_id: UUID,
        key: str,
        endpoint: str,
        request_hash: str,
        status_code: int,
        response: dict[str, Any],
    ) -> bool:
        return store_answer(
            self.session, user_id, key, endpoint, request_hash, status_code, response
        )
