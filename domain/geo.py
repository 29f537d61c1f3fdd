"""Great-circle geometry and the road-distance approximations used for estimates."""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class Point:
    lat: float
    lng: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and math.isfinite(self.lng)):
            raise ValueError("coordinates must be finite numbers")
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError("lat must be within [-90, 90]")
        if not -180.0 <= self.lng <= 180.0:
            raise ValueError("lng must be within [-180, 180]")


def haversine_m(a: Point, b: Point) -> float:
    """Distance along the Earth's surface between two points, in metres."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlmb = math.radians(b.lng - a.lng)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class RouteModel:
    """Straight-line distance times a detour factor, at an average city speed.

    Good enough for a first estimate without a routing engine; the final fare
    uses what was actually travelled where known.
    """

    detour_factor: float = 1.3
    average_speed_kmh: float = 30.0

    def road_distance_m(self, a: Point, b: Point) -> int:
        return round(haversine_m(a, b) * self.detour_factor)

    def duration_s(self, distance_m: int) -> int:
        return round(distance_m / (self.average_speed_kmh * 1000 / 3600))


#: the side of a live-state cell, in degrees of latitude and of longitude (5.6 km north
#: to south; east to west 5.6 km at the equator, 3.7 km at 48°, 2.8 km at 60°)
CELL_DEG = 0.05
_LNG_CELLS = round(360 / CELL_DEG)


def cell_of(lat: float, lng: float) -> str:
    """The cell a position falls in, as "row:column" (the Lua scripts compute the same
    string with the same floating-point division and floor)."""
    return f"{math.floor(lat / CELL_DEG)}:{math.floor(lng / CELL_DEG)}"


def cells_around(lat: float, lng: float, radius_m: float) -> list[str]:
    """Every cell a circle of `radius_m` around the point may reach (the cells under its
    bounding box), the point's own cell first, then by distance from it."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    cos_lat = math.cos(math.radians(min(abs(lat) + dlat, 89.9)))
    dlng = min(180.0, dlat / max(cos_lat, 1e-6))
    row, col = math.floor(lat / CELL_DEG), math.floor(lng / CELL_DEG)
    rows = range(math.floor((lat - dlat) / CELL_DEG), math.floor((lat + dlat) / CELL_DEG) + 1)
    lo, hi = math.floor((lng - dlng) / CELL_DEG), math.floor((lng + dlng) / CELL_DEG)
    if hi - lo + 1 >= _LNG_CELLS:
        lo, hi = -_LNG_CELLS // 2, _LNG_CELLS // 2 - 1
    cols = {((c + _LNG_CELLS // 2) % _LNG_CELLS) - _LNG_CELLS // 2 for c in range(lo, hi + 1)}
    cells = [(r, c) for r in rows for c in cols]
    cells.sort(
        key=lambda rc: (abs(rc[0] - row) + min(abs(rc[1] - col), _LNG_CELLS - abs(rc[1] - col)), rc)
    )
    return [f"{r}:{c}" for r, c in cells]
