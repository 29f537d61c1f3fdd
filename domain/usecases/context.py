"""The small context every use case takes: the time of the request and the rules in force."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from domain.dispatch import DispatchRules
from domain.fares import FareRules
from domain.geo import RouteModel
from domain.ratings import RatingRules


@dataclass(frozen=True, slots=True)
class FraudRules:
    rides_per_hour: int = 10
    cards_per_hour: int = 5
    failed_payments_per_hour: int = 3
    max_ride_amount: int = 50_000  # minor units


@dataclass(frozen=True, slots=True)
class Context:
    now: datetime
    fares: FareRules = field(default_factory=FareRules)
    route: RouteModel = field(default_factory=RouteModel)
    fraud: FraudRules = field(default_factory=FraudRules)
    max_route_m: int = 200_000
    ratings: RatingRules = field(default_factory=RatingRules)
    dispatch: DispatchRules = field(default_factory=DispatchRules)

    def at(self, now: datetime) -> Context:
        return replace(self, now=now)
