"""The stored first answers of idempotent requests (`Idempotency-Key`), on the unit of
work's session: written with the work they answer for, so a rolled-back request leaves no
record and can be retried with the same key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from infra.models import IdempotencyRecord


class SqlIdempotency:
    def __init__(self, session: Session) -> None:
        self.session = session

    def find(self, user_id: UUID, key: str) -> tuple[str, str, int, dict[str, Any]] | None:
        """(endpoint, request hash, status, body) of the first request with this key."""
        record = self.session.exec(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
            )
        ).first()
        if record is None:
            return None
        return record.endpoint, record.request_hash, record.status_code, record.response_body

    def store(
        self,
        user_id: UUID,
        key: str,
        endpoint: str,
        request_hash: str,
        status_code: int,
        response: dict[str, Any],
    ) -> bool:
        """Remember the answer; False if a concurrent request with this key got there first."""
        self.session.add(
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
            self.session.flush()
        except IntegrityError:
            return False
        return True
