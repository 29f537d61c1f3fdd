"""Opaque keyset cursors: `?limit=&cursor=` -> `{items, next_cursor}`."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from api.errors import ApiError


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, rid = raw.split("|", 1)
        parsed = datetime.fromisoformat(ts)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(rid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid cursor", "invalid_cursor") from exc
