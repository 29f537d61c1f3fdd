"""Ratings over HTTP: rate the other side of a ride, read ratings and summaries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt

from api.deps import ContextDep, CurrentAdmin, CurrentCaller, UowDep, ViewsDep
from api.errors import error_responses
from api.pagination import PageDep
from domain.ratings import TAGS, RatedSide
from domain.usecases import ratings as use
from domain.usecases import views

router = APIRouter(prefix="/api/v1", tags=["ratings"], responses=error_responses(401, 403))


class RatingIn(BaseModel):
    ride_id: uuid.UUID
    stars: StrictInt = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000, description="plain text")
    tags: list[str] = Field(default_factory=list, max_length=20)


class RatingPublic(BaseModel):
    """A rating as anyone reads it: never who gave it."""

    id: uuid.UUID
    ride_id: uuid.UUID
    stars: int
    comment: str | None
    tags: list[str]
    created_at: datetime


class RatingPage(BaseModel):
    items: list[RatingPublic]
    next_cursor: str | None


class RatingSummaryOut(BaseModel):
    average: float = Field(description="smoothed towards the prior while `smoothed`")
    count: int
    distribution: dict[str, int] = Field(description='stars -> ratings: {"1": n, ..., "5": n}')
    smoothed: bool


@router.post(
    "/ratings", status_code=201, response_model=RatingPublic, responses=error_responses(404, 409)
)
def rate(body: RatingIn, caller: CurrentCaller, uow: UowDep, ctx: ContextDep) -> JSONResponse:
    """Rate the other side of a completed ride: once, within 7 days of its end. A rating of
    3 stars or fewer needs a tag (`GET /api/v1/ratings/tags`)."""
    rating = use.rate(uow, ctx, caller, body.ride_id, body.stars, body.comment, body.tags)
    out = RatingPublic.model_validate(rating, from_attributes=True)
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


class RatingTags(BaseModel):
    passenger: list[str] = Field(description="What a passenger may say about the driver.")
    driver: list[str] = Field(description="What a driver may say about the passenger.")


@router.get("/ratings/tags", response_model=RatingTags)
def tags(caller: CurrentCaller) -> dict[str, list[str]]:
    """The tags each side may give: a passenger about the driver, a driver about the
    passenger."""
    return {
        "passenger": list(TAGS[RatedSide.DRIVER]),
        "driver": list(TAGS[RatedSide.PASSENGER]),
    }


@router.get("/ratings/user/{user_id}", response_model=RatingPage, responses=error_responses(400))
def received(user_id: uuid.UUID, caller: CurrentCaller, read: ViewsDep, ask: PageDep) -> RatingPage:
    """Ratings the user received, newest first."""
    rows = read.ratings_received(user_id, ask.before, ask.fetch)
    items, next_cursor = ask.page(
        rows, lambda r: RatingPublic.model_validate(r, from_attributes=True)
    )
    return RatingPage(items=items, next_cursor=next_cursor)


@router.get("/users/{user_id}/rating", response_model=RatingSummaryOut, tags=["users"])
def summary(
    user_id: uuid.UUID, caller: CurrentCaller, read: ViewsDep, ctx: ContextDep
) -> RatingSummaryOut:
    """`{average, count, distribution}`, as the rating worker last computed it."""
    s = views.rating_summary(read, ctx, user_id)
    return RatingSummaryOut(
        average=s.average,
        count=s.count,
        distribution={str(k): v for k, v in sorted(s.distribution.items())},
        smoothed=s.smoothed,
    )


@router.get("/admin/ratings/alerts", tags=["operations"])
def alerts(caller: CurrentAdmin, read: ViewsDep) -> dict[str, Any]:
    """Drivers whose average is under the line (`RIDEHAIL_RATING_ALERT_BELOW`)."""
    return {
        "items": [
            {
                "id": str(a.id),
                "user_id": str(a.user_id),
                "average": a.average,
                "count": a.count,
                "created_at": a.created_at.isoformat().replace("+00:00", "Z"),
            }
            for a in read.open_rating_alerts(limit=100)
        ],
        "next_cursor": None,
    }
