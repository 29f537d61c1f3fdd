"""Ratings in SQL: the `Ratings` port, and the summary the `ratings.aggregate` worker
recomputes from a user's ratings."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.errors import Conflict
from domain.ratings import RatedSide, RatingRules, Summary, needs_alert, summarize
from domain.usecases.ports import NewRating
from infra.db import newest_first, utcnow
from infra.models import Rating, RatingAlert, RatingSummary, User


class SqlRatings:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, new: NewRating) -> Rating:
        rating = Rating(**asdict(new))
        try:
            with self.session.begin_nested():
                self.session.add(rating)
                self.session.flush()
        except IntegrityError as exc:
            raise Conflict("you rated this ride already", code="already_rated") from exc
        return rating

    def received(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Rating]:
        stmt = newest_first(select(Rating).where(Rating.ratee_id == user_id), Rating, before, limit)
        return list(self.session.exec(stmt).all())

    def summary(self, user_id: UUID) -> RatingSummary | None:
        return self.session.get(RatingSummary, user_id)

    def open_alerts(self, limit: int) -> list[RatingAlert]:
        return list(
            self.session.exec(
                select(RatingAlert)
                .where(col(RatingAlert.closed_at).is_(None))
                .order_by(col(RatingAlert.created_at).desc())
                .limit(limit)
            ).all()
        )


def recompute(session: Session, user_id: UUID, rules: RatingRules) -> Summary | None:
    """The user's summary from all their ratings, stored; an alert opened or closed.

    The user's row is locked first, so two recomputations of one user run one after the
    other and the later one reads every rating committed before it: however ratings
    and jobs interleave, the last job to run leaves the summary of all of them."""
    user = session.exec(select(User).where(User.id == user_id).with_for_update()).first()
    if user is None:
        return None
    side = RatedSide(user.role) if user.role in set(RatedSide) else RatedSide.PASSENGER
    stars = list(
        session.exec(
            select(Rating.stars)
            .where(Rating.ratee_id == user_id)
            .order_by(col(Rating.created_at).desc(), col(Rating.id).desc())
        ).all()
    )
    result = summarize(stars, side, rules)
    row = session.get(RatingSummary, user_id) or RatingSummary(
        user_id=user_id, side=side, average=0, smoothed=True, count=0, distribution={}
    )
    row.side, row.average, row.raw_average = side, result.average, result.raw_average
    row.smoothed, row.count = result.smoothed, result.count
    row.distribution = {str(k): v for k, v in result.distribution.items()}
    row.updated_at = utcnow()
    session.add(row)
    _follow_alert(session, user_id, result, side, rules)
    return result


def _follow_alert(
    session: Session, user_id: UUID, result: Summary, side: RatedSide, rules: RatingRules
) -> None:
    open_alert = session.exec(
        select(RatingAlert).where(
            RatingAlert.user_id == user_id, col(RatingAlert.closed_at).is_(None)
        )
    ).first()
    if needs_alert(result, side, rules):
        if open_alert is None:
            assert result.raw_average is not None
            session.add(
                RatingAlert(user_id=user_id, average=result.raw_average, count=result.count)
            )
        else:
            open_alert.average = result.raw_average or open_alert.average
            open_alert.count = result.count
            session.add(open_alert)
    elif open_alert is not None:
        open_alert.closed_at = utcnow()
        session.add(open_alert)
