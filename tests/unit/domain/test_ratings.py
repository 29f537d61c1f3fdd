"""Rating rules, pure: what a rating may say, and what a user's ratings add up to."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import Conflict, Unprocessable
from domain.ratings import (
    RatedSide,
    RatingRules,
    check_rating,
    clean_comment,
    needs_alert,
    summarize,
)

RULES = RatingRules()
DONE = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _check(**over: object) -> tuple[str, ...]:
    args: dict[str, object] = dict(
        side=RatedSide.DRIVER,
        stars=5,
        tags=[],
        completed_at=DONE,
        now=DONE + timedelta(hours=1),
        rules=RULES,
    )
    args.update(over)
    return check_rating(**args)  # type: ignore[arg-type]


def test_a_good_rating_passes_with_its_tags_deduplicated() -> None:
    assert _check(tags=["friendly", "clean_car", "friendly"]) == ("friendly", "clean_car")


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"completed_at": None}, "ride_not_completed"),
        ({"now": DONE + timedelta(days=7, seconds=1)}, "rating_window_closed"),
        ({"stars": 0}, "invalid_stars"),
        ({"stars": 6}, "invalid_stars"),
        ({"tags": ["polite"]}, "invalid_tag"),  # a passenger's tag, given to a driver
        ({"side": RatedSide.PASSENGER, "tags": ["clean_car"]}, "invalid_tag"),
        ({"stars": 3}, "tag_needed"),
        ({"stars": 1}, "tag_needed"),
        (
            {"tags": ["safe_driving", "friendly", "clean_car", "good_route", "on_time", "late"]},
            "too_many_tags",
        ),
    ],
)
def test_what_a_rating_may_not_be(over: dict[str, object], code: str) -> None:
    with pytest.raises((Conflict, Unprocessable)) as err:
        _check(**over)
    assert err.value.code == code


def test_low_ratings_say_what_went_wrong() -> None:
    assert _check(stars=2, tags=["late"]) == ("late",)
    assert _check(stars=4) == ()
    assert _check(side=RatedSide.PASSENGER, stars=3, tags=["rude"]) == ("rude",)


def test_comments_are_plain_text() -> None:
    assert clean_comment("  nice\x00 ride\x1b[31m\u200b!\n  ", RULES) == "nice ride[31m!"
    assert clean_comment("line one\nline two", RULES) == "line one\nline two"
    assert clean_comment("\x07\x08", RULES) is None
    assert clean_comment("<b>bold</b>", RULES) == "<b>bold</b>"  # stored as text, not markup
    with pytest.raises(Unprocessable) as err:
        clean_comment("x" * 501, RULES)
    assert err.value.code == "comment_too_long"


def test_a_newcomer_is_smoothed_until_they_have_enough_ratings() -> None:
    one_bad = summarize([1], RatedSide.DRIVER, RULES)
    assert one_bad.smoothed
    assert one_bad.count == 1
    assert one_bad.average == round((1 + 4.5 * 5) / 6, 2)  # 3.92, not 1.0
    assert one_bad.raw_average == 1.0
    nobody = summarize([], RatedSide.PASSENGER, RULES)
    assert (nobody.average, nobody.count, nobody.raw_average) == (4.5, 0, None)
    settled = summarize([5] * 9 + [1], RatedSide.PASSENGER, RULES)
    assert not settled.smoothed
    assert settled.average == 4.6
    assert settled.distribution == {1: 1, 2: 0, 3: 0, 4: 0, 5: 9}


def test_a_drivers_average_counts_their_recent_ratings_only() -> None:
    old_bad, recent_good = [1] * 300, [5] * 500
    s = summarize(recent_good + old_bad, RatedSide.DRIVER, RULES)  # newest first
    assert s.average == 5.0
    assert s.count == 800
    assert s.distribution[1] == 300
    passenger = summarize(recent_good + old_bad, RatedSide.PASSENGER, RULES)
    assert passenger.average == round((2500 + 300) / 800, 2)


def test_the_summary_does_not_depend_on_arrival_order_within_the_window() -> None:
    stars = [random.Random(7).randint(1, 5) for _ in range(120)]
    shuffled = stars[:]
    random.Random(8).shuffle(shuffled)
    a, b = summarize(stars, RatedSide.DRIVER, RULES), summarize(shuffled, RatedSide.DRIVER, RULES)
    assert a == b


def test_only_drivers_with_enough_low_ratings_raise_an_alert() -> None:
    low = summarize([4] * 10, RatedSide.DRIVER, RULES)
    assert needs_alert(low, RatedSide.DRIVER, RULES)
    assert not needs_alert(summarize([4] * 9, RatedSide.DRIVER, RULES), RatedSide.DRIVER, RULES)
    assert not needs_alert(
        summarize([4] * 10, RatedSide.PASSENGER, RULES), RatedSide.PASSENGER, RULES
    )
    assert not needs_alert(summarize([5] * 10, RatedSide.DRIVER, RULES), RatedSide.DRIVER, RULES)


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="averages"):
        RatingRules(prior=7)
