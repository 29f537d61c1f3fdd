"""`Idempotency-Key` for mutating POSTs: replay the first answer, refuse a different body.

The record is written in the same transaction as the work it answers for, so a
rolled-back request leaves no record and can be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api.errors import ApiError
from infra.models import IdempotencyRecord


def request_hash(endpoint: str, body: Any) -> str:
    raw = json.dumps([endpoint, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def idempotency_key_header(
    idempotency_key: str | None = Header(
        default=None,
        max_length=255,
        description="Replays with the same key return the first response",
    ),
) -> str | None:
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiError(400, "Idempotency-Key must not be blank", "invalid_idempotency_key")
    return idempotency_key


def replay(
    session: Session, user_id: UUID, key: str | None, endpoint: str, body_hash: str
) -> JSONResponse | None:
    if key is None:
        return None
    record = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    ).first()
    if record is None:
        return None
    if record.endpoint != endpoint or record.request_hash != body_hash:
        raise ApiError(
            409,
            "this Idempotency-Key was used with a different request",
            "idempotency_key_reused",
        )
    return JSONResponse(
        record.response_body,
        status_code=record.status_code,
        headers={"Idempotent-Replayed": "true"},
    )


def remember(
    session: Session,
    user_id: UUID,
    key: str | None,
    endpoint: str,
    body_hash: str,
    status_code: int,
    response: dict[str, Any],
) -> None:
    if key is None:
        return
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            key=key,
            endpoint=endpoint,
            request_hash=body_hash,
            status_code=status_code,
            response_body=response,
        )
    )
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent request with the same key won
        raise ApiError(
            409, "a request with this Idempotency-Key is in progress", "idempotency_key_in_use"
        ) from exc
