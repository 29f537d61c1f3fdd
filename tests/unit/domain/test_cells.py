"""The live-state cells (`domain.geo`): a circle's cells hold every point of the circle,
so a search over them misses no driver in reach."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.geo import EARTH_RADIUS_M, Point, cell_of, cells_around, haversine_m


def _offset(lat: float, lng: float, bearing: float, dist_m: float) -> tuple[float, float]:
    """The point `dist_m` from (lat, lng) along `bearing` (radians) on the sphere."""
    d = dist_m / EARTH_RADIUS_M
    p1, l1 = math.radians(lat), math.radians(lng)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(bearing))
    l2 = l1 + math.atan2(
        math.sin(bearing) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lng2 = (math.degrees(l2) + 540) % 360 - 180
    return math.degrees(p2), lng2


@settings(max_examples=400, deadline=None)
@given(
    lat=st.floats(-80, 80),
    lng=st.floats(-180, 180),
    radius=st.floats(10, 50_000),
    bearing=st.floats(0, 2 * math.pi),
    part=st.floats(0, 1),
)
def test_every_point_of_a_circle_lies_in_one_of_its_cells(
    lat: float, lng: float, radius: float, bearing: float, part: float
) -> None:
    plat, plng = _offset(lat, lng, bearing, radius * part)
    if haversine_m(Point(lat, lng), Point(plat, plng)) > radius:
        return  # rounding at the rim
    assert cell_of(plat, plng) in cells_around(lat, lng, radius)


def test_the_own_cell_comes_first_and_the_cells_are_few() -> None:
    cells = cells_around(48.8566, 2.3522, 3_000)
    assert cells[0] == cell_of(48.8566, 2.3522)
    assert len(cells) == len(set(cells)) <= 9
    assert len(cells_around(48.8566, 2.3522, 300)) <= 4


def test_cells_wrap_at_the_antimeridian() -> None:
    east = cells_around(0.0, 179.999, 2_000)
    assert cell_of(0.0, -179.999) in east
