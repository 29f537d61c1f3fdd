"""The ops page (`GET /ops`) and the figures it shows (`GET /api/v1/admin/overview`).

The page is one self-contained file (no external scripts, fonts or map tiles: none are
reachable offline). It signs the admin in, polls the overview, follows
`/api/v1/admin/events` over SSE, and draws drivers and rides on a canvas."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from api.deps import CurrentAdmin, ViewsDep
from api.errors import error_responses
from api.schemas import LatLng
from domain.rides import RideStatus
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


class OverviewAlert(BaseModel):
    """An open low-rating alert, with the driver's name."""

    user_id: uuid.UUID = Field(description="The driver.")
    name: str = Field(description="The driver's name.")
    average: float = Field(description="Their plain mean when the alert opened.")
    count: int = Field(description="Ratings that mean was over.")
    since: datetime = Field(description="When the alert opened.")


class ActiveRide(BaseModel):
    """A ride under way, for the map."""

    id: uuid.UUID = Field(description="The ride.")
    status: RideStatus = Field(description="Its status.")
    driver_id: uuid.UUID | None = Field(description="Its driver, once one accepted.")
    pickup: LatLng = Field(description="Where the passenger is picked up.")
    dropoff: LatLng = Field(description="Where the trip ends.")


class Overview(BaseModel):
    """The ops page's figures."""

    since_hours: int = Field(description="The window the counts are over.")
    rides_by_status: dict[str, int] = Field(
        description="Rides made in the window, by their status now (statuses with none left out)."
    )
    payments_by_status: dict[str, int] = Field(
        description="Payments made in the window, by their status now."
    )
    queues: dict[str, int] = Field(description="Jobs waiting, by worker queue.")
    drivers_online: int = Field(description="Drivers in the live index now.")
    rating_alerts: list[OverviewAlert] = Field(description="Open alerts, lowest average first.")
    active_rides: list[ActiveRide] = Field(description="Rides under way, newest first.")


@router.get("/api/v1/admin/overview", response_model=Overview, responses=error_responses(401, 403))
def overview(
    caller: CurrentAdmin,
    read: ViewsDep,
    since_h: Annotated[
        int, Query(ge=1, le=24 * 30, description="Count what was made in this many hours.")
    ] = 24,
) -> dict[str, Any]:
    """Rides and payments by status (over `since_h` hours), queue depths, drivers online,
    open low-rating alerts, and the rides under way with their pickup and dropoff."""
    return views.overview(read, caller, since_h)
