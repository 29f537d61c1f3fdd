"""Fare rules: base + per km + per minute, a minimum, and the fees of cancellation and no-show.

All arithmetic is in integer minor units. Per-km and per-minute rates are in
minor units per km / per minute; distances and durations are rounded once, at
the end, half up.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from domain.money import Money, percent_of


@dataclass(frozen=True, slots=True)
class FareRules:
    currency: str = "usd"
    base: int = 250
    per_km: int = 120
    per_minute: int = 30
    minimum: int = 700
    booking_fee: int = 0
    cancellation_fee: int = 500
    cancellation_grace_s: int = 120
    no_show_fee: int = 500
    no_show_wait_s: int = 300
    commission_bp: int = 2000  # platform commission, basis points of the fare

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and value < 0:
                raise ValueError(f"{f.name} must not be negative")
        if not 0 <= self.commission_bp <= 10_000:
            raise ValueError("commission_bp must be within 0..10000")


@dataclass(frozen=True, slots=True)
class FareBreakdown:
    base: int
    distance: int
    time: int
    booking_fee: int
    minimum_applied: bool
    total: Money


def compute_fare(rules: FareRules, distance_m: int, duration_s: int) -> FareBreakdown:
    if distance_m < 0 or duration_s < 0:
        raise ValueError("distance and duration must not be negative")
    # rate * metres / 1000, rounded half up, without floats
    distance_part = (rules.per_km * distance_m + 500) // 1000
    time_part = (rules.per_minute * duration_s + 30) // 60
    subtotal = rules.base + distance_part + time_part
    minimum_applied = subtotal < rules.minimum
    total = max(subtotal, rules.minimum) + rules.booking_fee
    return FareBreakdown(
        base=rules.base,
        distance=distance_part,
        time=time_part,
        booking_fee=rules.booking_fee,
        minimum_applied=minimum_applied,
        total=Money(total, rules.currency),
    )


def cancellation_fee(
    rules: FareRules,
    *,
    by_passenger: bool,
    driver_assigned: bool,
    seconds_since_assignment: float | None,
) -> Money:
    """A passenger who cancels after the grace period that follows driver assignment pays.

    Cancelling before a driver is assigned, within the grace period, or by the
    driver or an admin is free.
    """
    zero = Money.zero(rules.currency)
    if not by_passenger or not driver_assigned or seconds_since_assignment is None:
        return zero
    if seconds_since_assignment <= rules.cancellation_grace_s:
        return zero
    return Money(rules.cancellation_fee, rules.currency)


def no_show_fee(rules: FareRules) -> Money:
    return Money(rules.no_show_fee, rules.currency)


def commission(rules: FareRules, fare: Money) -> Money:
    return Money(percent_of(fare.amount, rules.commission_bp), fare.currency)


def hold_amount(estimate: Money, margin_bp: int = 2_000) -> Money:
    """What to authorize at request: the estimate plus a margin for a longer trip."""
    return Money(estimate.amount + percent_of(estimate.amount, margin_bp), estimate.currency)
