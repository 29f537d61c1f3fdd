"""Ratings both ways: who may rate what, what a rating may say, and what a user's ratings
add up to. Pure: the use case stores a rating, a worker recomputes the summary.

Each side of a completed ride rates the other once, within a window after completion
(7 days), with 1..5 stars, an optional comment (plain text, control characters
stripped) and optional tags from the list of its side; 3 stars or fewer need a tag, so
a low rating says what went wrong.

The summary is recomputed from all of a user's ratings every time (never incremented),
so it does not depend on the order ratings arrive in, and recomputing twice changes
nothing. A driver's average counts their most recent 500 ratings (what they do now, not
years ago). Until a user has `enough` ratings, the average shown is smoothed towards a
prior: `(sum + prior * weight) / (count + weight)`, so one early 1-star (or 5-star)
rating does not define a newcomer.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.errors import Conflict, Unprocessable

STARS = range(1, 6)


class RatedSide(StrEnum):
    """Who is rated: the driver (by the passenger) or the passenger (by the driver)."""

    DRIVER = "driver"
    PASSENGER = "passenger"


#: the tags a rater may give, by the side being rated
TAGS: dict[RatedSide, tuple[str, ...]] = {
    RatedSide.DRIVER: (
        "safe_driving",
        "friendly",
        "clean_car",
        "good_route",
        "on_time",
        "unsafe_driving",
        "rude",
        "dirty_car",
        "wrong_route",
        "late",
    ),
    RatedSide.PASSENGER: (
        "polite",
        "on_time",
        "respectful",
        "rude",
        "late",
        "messy",
        "wrong_pickup",
    ),
}


@dataclass(frozen=True, slots=True)
class RatingRules:
    """Settings `RIDEHAIL_RATING_<FIELD>`; see docs/ratings.md for what each changes."""

    window_days: int = 7
    comment_max: int = 500
    tags_max: int = 5
    tag_needed_at_or_below: int = 3
    driver_window: int = 500  # a driver's average counts this many most recent ratings
    enough: int = 10  # from this many ratings on, the plain average is shown
    prior: float = 4.5  # what a newcomer's average leans towards
    prior_weight: int = 5  # as if this many ratings of `prior` stood beside theirs
    alert_below: float = 4.2  # a driver under this average is flagged for ops
    alert_min_count: int = 10  # ... once they have this many ratings

    def __post_init__(self) -> None:
        if self.window_days < 1 or self.driver_window < 1 or self.prior_weight < 0:
            raise ValueError("window_days and driver_window must be positive")
        if not 1 <= self.prior <= 5 or not 1 <= self.alert_below <= 5:
            raise ValueError("prior and alert_below are averages of 1..5 stars")


def clean_comment(comment: str | None, rules: RatingRules) -> str | None:
    """Plain text: control characters (other than line breaks) removed, blanks trimmed."""
    if comment is None:
        return None
    kept = "".join(
        ch for ch in comment if ch in "\n\t" or not unicodedata.category(ch).startswith("C")
    ).strip()
    if len(kept) > rules.comment_max:
        raise Unprocessable(
            f"a comment has at most {rules.comment_max} characters", code="comment_too_long"
        )
    return kept or None


def check_rating(
    *,
    side: RatedSide,
    stars: int,
    tags: Sequence[str],
    completed_at: datetime | None,
    now: datetime,
    rules: RatingRules,
) -> tuple[str, ...]:
    """Refuse what a rating may not be; the tags, deduplicated, in the order given."""
    if completed_at is None:
        raise Conflict("a ride is rated once it is completed", code="ride_not_completed")
    if now > completed_at + timedelta(days=rules.window_days):
        raise Conflict(
            f"a ride is rated within {rules.window_days} days of its end",
            code="rating_window_closed",
        )
    if stars not in STARS:
        raise Unprocessable("stars are 1 to 5", code="invalid_stars")
    unique = tuple(dict.fromkeys(tags))
    unknown = [t for t in unique if t not in TAGS[side]]
    if unknown:
        raise Unprocessable(
            f"unknown tags for a {side}: {', '.join(unknown)} (see /api/v1/ratings/tags)",
            code="invalid_tag",
        )
    if len(unique) > rules.tags_max:
        raise Unprocessable(f"at most {rules.tags_max} tags", code="too_many_tags")
    if stars <= rules.tag_needed_at_or_below and not unique:
        raise Unprocessable(
            f"a rating of {stars} stars needs a tag saying what went wrong", code="tag_needed"
        )
    return unique


@dataclass(frozen=True, slots=True)
class Summary:
    average: float  # what is shown: smoothed while the user has few ratings
    count: int  # all ratings received
    distribution: dict[int, int]  # stars -> how many, over all ratings
    smoothed: bool
    raw_average: float | None  # over the ratings the average counts; None without any


def summarize(stars_newest_first: Sequence[int], side: RatedSide, rules: RatingRules) -> Summary:
    """A user's rating summary from all the stars they received, newest first."""
    distribution = {s: 0 for s in STARS}
    for s in stars_newest_first:
        distribution[s] += 1
    counted = (
        stars_newest_first[: rules.driver_window]
        if side is RatedSide.DRIVER
        else stars_newest_first
    )
    n, total = len(counted), sum(counted)
    raw = round(total / n, 2) if n else None
    if len(stars_newest_first) >= rules.enough and raw is not None:
        return Summary(raw, len(stars_newest_first), distribution, False, raw)
    smoothed = (total + rules.prior * rules.prior_weight) / (n + rules.prior_weight or 1)
    return Summary(round(smoothed, 2), len(stars_newest_first), distribution, True, raw)


def needs_alert(summary: Summary, side: RatedSide, rules: RatingRules) -> bool:
    """A driver whose (plain) average fell under the line, with enough ratings to say so."""
    return (
        side is RatedSide.DRIVER
        and summary.count >= rules.alert_min_count
        and summary.raw_average is not None
        and summary.raw_average < rules.alert_below
    )
