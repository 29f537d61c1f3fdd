"""The ops page (`GET /ops`) and the figures it shows (`GET /api/v1/admin/overview`).

The page is one self-contained file (no external scripts, fonts or map tiles: none are
reachable offline). It signs the admin in, polls the overview, follows
`/api/v1/admin/events` over SSE, and draws drivers and rides on a canvas."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import CurrentAdmin, ViewsDep
from api.errors import error_responses
from domain.usecases import views

router = APIRouter(tags=["operations"])


@lru_cache(maxsize=1)
def _page() -> str:
    return files("api").joinpath("ops.html").read_text(encoding="utf-8")


@router.get("/ops", include_in_schema=False, response_class=HTMLResponse)
def ops_page() -> HTMLResponse:
    """The admin's live page; it asks for an admin's sign-in itself."""
    return HTMLResponse(
        _page(),
        headers={
            # everything is inline and from here: nothing else may load
            "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
            "style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'",
            "Cache-Control": "no-store",
        },
    )


@router.get("/api/v1/admin/overview", responses=error_responses(401, 403))
def overview(
    caller: CurrentAdmin, read: ViewsDep, since_h: Annotated[int, Query(ge=1, le=24 * 30)] = 24
) -> dict[str, Any]:
    """Rides and payments by status (over `since_h` hours), queue depths, drivers online,
    open low-rating alerts, and the rides under way with their pickup and dropoff."""
    return views.overview(read, caller, since_h)
