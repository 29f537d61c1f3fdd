"""Ratings over HTTP: rate the other side of a ride, read ratings and summaries."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt

from api.deps import ContextDep, CurrentAdmin, CurrentCaller, UowDep, ViewsDep
from api.errors import error_responses
from api.pagination import PageDep
from api.schemas import Page
from domain.ratings import TAGS, RatedSide
from domain.usecases import ratings as use
from domain.usecases import views

router = APIRouter(prefix="/api/v1", tags=["ratings"], responses=error_responses(401, 403))


class RatingIn(BaseModel):
    """A rating of the other side of a ride."""

    ride_id: uuid.UUID = Field(description="The completed ride.")
    stars: StrictInt = Field(description="1 to 5.", ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000, description="plain text")
    tags: list[str] = Field(
        description="From `list_rating_tags`, for the side rated; needed at 3 stars or fewer.",
        default_factory=list,
        max_length=20,
    )


class RatingPublic(BaseModel):
    """A rating as anyone reads it: never who gave it."""

    id: uuid.UUID = Field(description="The rating's id.")
    ride_id: uuid.UUID = Field(description="Its ride.")
    stars: int = Field(description="1 to 5.")
    comment: str | None = Field(description="Plain text, if any.")
    tags: list[str] = Field(description="The tags given.")
    created_at: datetime = Field(description="When it was given.")


class RatingPage(Page[RatingPublic]):
    """Ratings, newest first."""


class RatingSummaryOut(BaseModel):
    """A user's rating as the rating worker last computed it."""

    shown: float = Field(
        description="The figure to show: the plain mean once the user has enough ratings, "
        "smoothed towards the prior before (so one early bad trip does not sink a new "
        "driver)."
    )
    mean: float | None = Field(
        description="The plain mean of the ratings counted; null for a user nobody rated."
    )
    average: float = Field(
        deprecated=True,
        description="The same as `shown`, kept for apps written against it; read `shown`.",
    )
    count: int = Field(description="Ratings counted (the most recent ones).")
    distribution: dict[str, int] = Field(description='stars -> ratings: {"1": n, ..., "5": n}')
    smoothed: bool = Field(
        description="True while `shown` is smoothed, i.e. differs in kind from `mean`."
    )


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
    """The tags each side may give."""

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
        shown=s.average,
        mean=s.raw_average,
        average=s.average,
        count=s.count,
        distribution={str(k): v for k, v in sorted(s.distribution.items())},
        smoothed=s.smoothed,
    )


class RatingAlertOut(BaseModel):
    """A driver whose plain mean fell under the line; closed when it is back above."""

    id: uuid.UUID = Field(description="The alert's id.")
    user_id: uuid.UUID = Field(description="The driver.")
    average: float = Field(description="The driver's plain mean when the alert was opened.")
    count: int = Field(description="Ratings that mean was over.")
    created_at: datetime = Field(description="When the alert was opened.")


class RatingAlertPage(Page[RatingAlertOut]):
    """Open alerts, newest first."""


@router.get(
    "/admin/ratings/alerts",
    tags=["operations"],
    response_model=RatingAlertPage,
    responses=error_responses(400),
)
def alerts(caller: CurrentAdmin, read: ViewsDep, ask: PageDep) -> RatingAlertPage:
    """Drivers whose average is under the line (`RIDEHAIL_RATING_ALERT_BELOW`), newest
    alert first."""
    rows = read.open_rating_alerts(ask.before, ask.fetch)
    items, next_cursor = ask.page(
        rows, lambda a: RatingAlertOut.model_validate(a, from_attributes=True)
    )
    return RatingAlertPage(items=items, next_cursor=next_cursor)
