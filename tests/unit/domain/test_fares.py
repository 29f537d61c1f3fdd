from __future__ import annotations

import pytest

from domain.fares import FareRules, cancellation_fee, commission, compute_fare, no_show_fee
from domain.money import Money, percent_of

RULES = FareRules(currency="usd", base=250, per_km=120, per_minute=30, minimum=700, booking_fee=0)


def test_base_plus_distance_plus_time() -> None:
    fare = compute_fare(RULES, distance_m=10_000, duration_s=1_200)
    assert fare.distance == 1_200  # 10 km x 120
    assert fare.time == 600  # 20 min x 30
    assert fare.total == Money(250 + 1_200 + 600, "usd")
    assert not fare.minimum_applied


def test_minimum_fare() -> None:
    fare = compute_fare(RULES, distance_m=500, duration_s=60)
    assert fare.minimum_applied
    assert fare.total == Money(700, "usd")


def test_booking_fee_is_added_after_the_minimum() -> None:
    rules = FareRules(minimum=700, booking_fee=99)
    assert compute_fare(rules, 0, 0).total.amount == 799


@pytest.mark.parametrize(
    ("metres", "expected"),
    [(0, 0), (4, 0), (5, 1), (1_000, 120), (1_004, 120), (1_005, 121), (12_345, 1_481)],
)
def test_distance_part_rounds_half_up_in_integers(metres: int, expected: int) -> None:
    assert compute_fare(RULES, metres, 0).distance == expected


def test_amounts_are_integers_and_never_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        compute_fare(RULES, -1, 0)
    with pytest.raises(ValueError, match="negative"):
        FareRules(base=-1)
    total = compute_fare(RULES, 7_777, 777).total.amount
    assert isinstance(total, int)


@pytest.mark.parametrize(
    ("by_passenger", "assigned", "since", "fee"),
    [
        (True, False, None, 0),  # no driver yet
        (True, True, 30, 0),  # within the grace period
        (True, True, 120, 0),  # exactly at its end
        (True, True, 121, 500),
        (False, True, 3_600, 0),  # the driver or an admin cancelled
    ],
)
def test_cancellation_fee(
    by_passenger: bool, assigned: bool, since: float | None, fee: int
) -> None:
    got = cancellation_fee(
        RULES, by_passenger=by_passenger, driver_assigned=assigned, seconds_since_assignment=since
    )
    assert got == Money(fee, "usd")


def test_no_show_fee_and_commission() -> None:
    assert no_show_fee(RULES) == Money(500, "usd")
    assert commission(RULES, Money(1_000, "usd")) == Money(200, "usd")
    assert percent_of(1_005, 2_000) == 201  # 200.99... half up
    assert percent_of(1_002, 2_000) == 200


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(TypeError):
        Money(10.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="currency"):
        Money(1, "USD")
    with pytest.raises(ValueError, match="mismatch"):
        _ = Money(1, "usd") + Money(1, "eur")
    assert Money(3, "usd") - Money(5, "usd") == Money(-2, "usd")
