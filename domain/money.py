"""Money is an integer amount of minor units plus an ISO 4217 currency, never a float."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount must be an int of minor units")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.islower():
            raise ValueError(f"currency must be a lower-case ISO code, got {self.currency!r}")

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def max(self, other: Money) -> Money:
        self._same(other)
        return self if self.amount >= other.amount else other

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)


def percent_of(amount: int, basis_points: int) -> int:
    """`basis_points`/10_000 of `amount`, rounded half up, in integer arithmetic."""
    return (amount * basis_points + 5_000) // 10_000
