from __future__ import annotations

import uuid

import pytest

from domain.geo import Point, RouteModel, haversine_m
from domain.ledger import JournalEntry, Line, balances, ride_fare_entry, ride_fee_entry
from domain.money import Money


def test_a_fare_entry_balances_and_splits_the_fare() -> None:
    ride, rider, driver = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    entry = ride_fare_entry(ride, rider, driver, Money(1_000, "usd"), Money(200, "usd"))
    assert entry.key == f"ride:{ride}:fare"
    assert sum(line.amount for line in entry.lines) == 0
    b = balances(entry.lines)
    assert b[(f"rider_receivable:{rider}", "usd")] == 1_000
    assert b[(f"driver_payable:{driver}", "usd")] == -800
    assert b[("platform_revenue", "usd")] == -200


def test_fee_entries_balance_with_and_without_a_driver() -> None:
    ride, rider, driver = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for d in (driver, None):
        entry = ride_fee_entry(
            ride, "cancellation_fee", rider, d, Money(500, "usd"), Money(100, "usd")
        )
        assert sum(line.amount for line in entry.lines) == 0


def test_an_unbalanced_entry_cannot_exist() -> None:
    with pytest.raises(ValueError, match="does not balance"):
        JournalEntry("k", "x", (Line("a", 10, "usd"), Line("b", -9, "usd")))
    with pytest.raises(ValueError, match="does not balance"):
        # balancing across currencies is not balancing
        JournalEntry("k", "x", (Line("a", 10, "usd"), Line("b", -10, "eur")))
    with pytest.raises(ValueError, match="two lines"):
        JournalEntry("k", "x", (Line("a", 0, "usd"),))


def test_haversine_known_distance() -> None:
    berlin, paris = Point(52.5200, 13.4050), Point(48.8566, 2.3522)
    assert abs(haversine_m(berlin, paris) - 877_500) < 2_000
    assert haversine_m(berlin, berlin) == 0


def test_route_model_and_point_bounds() -> None:
    route = RouteModel(detour_factor=1.5, average_speed_kmh=36.0)
    a, b = Point(0.0, 0.0), Point(0.0, 0.01)  # ~1113 m on the equator
    d = route.road_distance_m(a, b)
    assert 1_660 < d < 1_680
    assert route.duration_s(3_600) == 360  # 36 km/h = 10 m/s
    for bad in ((91.0, 0.0), (0.0, 181.0), (float("nan"), 0.0), (0.0, float("inf"))):
        with pytest.raises(ValueError, match="lat|lng|finite"):
            Point(*bad)
