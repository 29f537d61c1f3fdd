"""Ratings in SQL (the `Ratings` port): ratings, each user's summary, the low-rating alerts."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from uuid import UUID

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from domain.errors import Conflict
from domain.ratings import Summary
from domain.usecases.ports import NewRating
from infra.models import Rating, RatingAlert, RatingSummary, User


class SqlRatings:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._added: list[Rating] = []

    def add(self, new: NewRating) -> Rating:
        rating = Rating(**asdict(new))
        try:
            with self.session.begin_nested():
                self.session.add(rating)
                self.session.flush()
        except IntegrityError as exc:
            raise Conflict("you rated this ride already", code="already_rated") from exc
        self._added.append(rating)
        return rating

    def just_added(self) -> list[Rating]:
        added, self._added = self._added, []
        return added

    def get(self, rating_id: UUID) -> Rating | None:
        return self.session.get(Rating, rating_id)

    def stars_of(self, user_id: UUID) -> tuple[str, list[int]] | None:
        user = self.session.exec(select(User).where(User.id == user_id).with_for_update()).first()
        if user is None:
            return None
        stars = self.session.exec(
            select(Rating.stars)
            .where(Rating.ratee_id == user_id)
            .order_by(col(Rating.created_at).desc(), col(Rating.id).desc())
        ).all()
        return str(user.role), list(stars)

    def save_summary(self, user_id: UUID, side: str, summary: Summary, now: datetime) -> None:
        row = self.session.get(RatingSummary, user_id) or RatingSummary(
            user_id=user_id, side=side, average=0, smoothed=True, count=0, distribution={}
        )
        row.side, row.average, row.raw_average = side, summary.average, summary.raw_average
        row.smoothed, row.count = summary.smoothed, summary.count
        row.distribution = {str(k): v for k, v in summary.distribution.items()}
        row.updated_at = now
        self.session.add(row)

    def follow_alert(self, user_id: UUID, summary: Summary | None, now: datetime) -> None:
        open_alert = self.session.exec(
            select(RatingAlert).where(
                RatingAlert.user_id == user_id, col(RatingAlert.closed_at).is_(None)
            )
        ).first()
        if summary is None:
            if open_alert is not None:
                open_alert.closed_at = now
                self.session.add(open_alert)
        elif open_alert is None:
            assert summary.raw_average is not None
            self.session.add(
                RatingAlert(user_id=user_id, average=summary.raw_average, count=summary.count)
            )
        else:
            open_alert.average = summary.raw_average or open_alert.average
            open_alert.count = summary.count
            self.session.add(open_alert)
