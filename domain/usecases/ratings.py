"""Rating use cases: rate the other side of a completed ride, read what a user received,
their summary, and the alerts ops follow. Adding a rating only records it: the summary
is recomputed by a worker (`ratings.aggregate`), never in the request."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from domain.access import Access, Actor, Caller, require, ride_access
from domain.errors import Forbidden, NotFound, NotVisibleYet
from domain.jobs import Job
from domain.ratings import (
    RatedSide,
    Summary,
    check_rating,
    clean_comment,
    needs_alert,
    summarize,
)
from domain.rides import RideStatus
from domain.usecases.context import Context
from domain.usecases.ports import NewRating, UnitOfWork


def rate(
    uow: UnitOfWork,
    ctx: Context,
    caller: Caller,
    ride_id: UUID,
    stars: int,
    comment: str | None,
    tags: list[str],
) -> Any:
    """The passenger rates the driver, or the driver the passenger: once per side."""
    if caller.role is Actor.ADMIN:
        raise Forbidden("admins do not rate rides", code="role_forbidden")
    ride = uow.rides.get(ride_id)
    if ride is None:
        raise NotFound("ride not found", code="ride_not_found")
    require(ride_access(caller, ride.passenger_id, ride.driver_id), Access.PARTICIPANT)
    by_passenger = caller.role is Actor.PASSENGER
    side = RatedSide.DRIVER if by_passenger else RatedSide.PASSENGER
    ratee = ride.driver_id if by_passenger else ride.passenger_id
    completed = ride.completed_at if ride.status == RideStatus.COMPLETED else None
    kept_tags = check_rating(
        side=side,
        stars=stars,
        tags=tags,
        completed_at=completed,
        now=ctx.now,
        rules=ctx.ratings,
    )
    assert ratee is not None  # a completed ride has its driver
    rating = uow.ratings.add(
        NewRating(
            ride_id=ride.id,
            rater_id=caller.id,
            ratee_id=ratee,
            ratee_side=side,
            stars=stars,
            comment=clean_comment(comment, ctx.ratings),
            tags=list(kept_tags),
            created_at=ctx.now,
        )
    )
    return rating


def collect(uow: UnitOfWork) -> None:
    """Each rating added in this unit of work: its ratee's summary recomputed, and the
    ratee told (called by the unit of work just before it commits)."""
    for rating in uow.ratings.just_added():
        uow.jobs.enqueue(Job.AGGREGATE_RATINGS, user_id=str(rating.ratee_id))
        uow.jobs.enqueue(Job.NOTIFY_RATING, rating_id=str(rating.id))


def aggregate(uow: UnitOfWork, ctx: Context, user_id: UUID) -> Summary:
    """The user's summary recomputed from every rating they received (never incremented,
    so a duplicate or a reordered job changes nothing), and their alert opened or closed."""
    found = uow.ratings.stars_of(user_id)
    if found is None:
        raise NotVisibleYet(f"user {user_id} not visible yet")
    role, stars = found
    side = RatedSide(role) if role in set(RatedSide) else RatedSide.PASSENGER
    result = summarize(stars, side, ctx.ratings)
    uow.ratings.save_summary(user_id, side, result, ctx.now)
    alert = needs_alert(result, side, ctx.ratings)
    uow.ratings.follow_alert(user_id, result if alert else None, ctx.now)
    return result
