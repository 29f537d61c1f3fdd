"""Every list: `?limit=&cursor=` -> `{items, next_cursor}` (`api.schemas.Page`), with opaque keyset
cursors and one default page size."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query

from api.errors import ApiError

T = TypeVar("T")

#: the page size when `limit` is not given, the same for every list
DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Limit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_LIMIT,
        description=f"At most this many items (1 to {MAX_LIMIT}; {DEFAULT_LIMIT} if not given).",
    ),
]
Cursor = Annotated[
    str | None,
    Query(
        description="The `next_cursor` of the previous page; leave out for the first page. "
        "Opaque: pass it back as it came.",
    ),
]


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


@dataclass(frozen=True, slots=True)
class PageAsk:
    """`?limit=&cursor=` of a keyset-paginated list (newest first on (created_at, id))."""

    limit: int
    before: tuple[datetime, uuid.UUID] | None

    @property
    def fetch(self) -> int:
        """Rows to ask for: one more than a page tells whether another page follows."""
        return self.limit + 1

    def page(self, rows: Sequence[Any], shape: Callable[[Any], T]) -> tuple[list[T], str | None]:
        """The page's items, shaped, and the cursor of the next page (None on the last)."""
        items = list(rows[: self.limit])
        more = len(rows) > self.limit
        next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
        return [shape(r) for r in items], next_cursor


def page_ask(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageAsk:
    return PageAsk(limit, decode_cursor(cursor))


PageDep = Annotated[PageAsk, Depends(page_ask)]
