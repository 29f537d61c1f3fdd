"""`Idempotency-Key` for mutating POSTs: replay the first answer, refuse a different body.

The record is written in the same transaction as the work it answers for (by
`infra.idempotency`), so a rolled-back request leaves no record and can be retried with
the same key.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from uuid import UUID

from fastapi import Header
from fastapi.responses import JSONResponse

from api.errors import ApiError
from infra.unit_of_work import SqlUnitOfWork


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


class Replay:
    """One request's idempotency: its first answer if the key was used, and remembering
    this answer otherwise."""

    def __init__(
        self, uow: SqlUnitOfWork, user_id: UUID, key: str | None, endpoint: str, body: Any
    ) -> None:
        self.uow, self.user_id, self.key, self.endpoint = uow, user_id, key, endpoint
        self.body_hash = request_hash(endpoint, body)

    def first_answer(self) -> JSONResponse | None:
        if self.key is None:
            return None
        found = self.uow.idempotency.find(self.user_id, self.key)
        if found is None:
            return None
        endpoint, body_hash, status, body = found
        if endpoint != self.endpoint or body_hash != self.body_hash:
            raise ApiError(
                409,
                "this Idempotency-Key was used with a different request",
                "idempotency_key_reused",
            )
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})

    def remember(self, status_code: int, response: dict[str, Any]) -> None:
        if self.key is None:
            return
        if not self.uow.idempotency.store(
            self.user_id,
            self.key,
            self.endpoint,
            self.body_hash,
            status_code,
            response,
        ):
            raise ApiError(
                409, "a request with this Idempotency-Key is in progress", "idempotency_key_in_use"
            )
