"""Dispatch rules: who is offered a requested ride, how the search widens, when it gives up.

A ride is offered in waves: the nearest few idle drivers first, each offer with
an expiry; when every offer of a wave is declined or expired, the next wave
searches a wider radius, up to a limit; then the ride expires. A driver who
often ignores or declines offers is ranked later, never excluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OfferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class DispatchRules:
    wave_size: int = 3
    offer_ttl_s: float = 15.0
    first_radius_m: float = 2_000.0
    radius_factor: float = 2.0
    max_radius_m: float = 16_000.0
    empty_wave_retry_s: float = 3.0  # nobody in range: look again this much later
    ignore_penalty: float = 1.0  # how much a 100 % ignore rate stretches a distance

    def radius(self, wave: int) -> float:
        """The search radius of wave `wave` (1-based)."""
        return min(self.first_radius_m * self.radius_factor ** (wave - 1), self.max_radius_m)

    @property
    def max_waves(self) -> int:
        """Waves until the radius limit, plus one more at the limit."""
        waves, radius = 1, self.first_radius_m
        while radius < self.max_radius_m:
            radius *= self.radius_factor
            waves += 1
        return waves + 1


@dataclass(frozen=True, slots=True)
class Candidate:
    driver_id: str
    distance_m: float
    offered: int = 0  # offers this driver received
    ignored: int = 0  # of those, declined or left to expire


def ignore_rate(c: Candidate) -> float:
    # a newcomer starts with a clean slate; rates settle after a few offers
    return c.ignored / (c.offered + 2)


def rank(candidates: list[Candidate], rules: DispatchRules) -> list[Candidate]:
    """Nearest first, with a driver's distance stretched by how often they ignore offers:
    ties and near-ties go to the responsive driver, and a far responsive driver never
    beats a near one by more than the penalty allows."""
    return sorted(
        candidates,
        key=lambda c: (c.distance_m * (1 + rules.ignore_penalty * ignore_rate(c)), c.driver_id),
    )


def pick(candidates: list[Candidate], rules: DispatchRules, excluded: set[str]) -> list[Candidate]:
    """This wave's drivers: ranked, minus those already offered this ride."""
    fresh = [c for c in candidates if c.driver_id not in excluded]
    return rank(fresh, rules)[: rules.wave_size]
