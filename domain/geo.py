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
