"""Double-entry journal entries.

Every money event is one entry whose lines sum to zero per currency. Accounts are
named `kind` or `kind:owner` (e.g. `driver_payable:<uuid>`). Sign convention:
positive = debit, negative = credit. Balances are derived by summing lines,
never stored alone. Each entry has a `key` unique across the journal (e.g.
`ride:<id>:fare`), which is what makes a duplicate posting impossible.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from domain.money import Money


class Account(StrEnum):
    RIDER_RECEIVABLE = "rider_receivable"  # what a rider owes us
    DRIVER_PAYABLE = "driver_payable"  # what we owe a driver
    PLATFORM_REVENUE = "platform_revenue"
    STRIPE_CLEARING = "stripe_clearing"
    CASH_HELD_BY_DRIVER = "cash_held_by_driver"
    REFUNDS = "refunds"


def account(kind: Account, owner: UUID | None = None) -> str:
    return f"{kind}:{owner}" if owner is not None else str(kind)


@dataclass(frozen=True, slots=True)
class Line:
    account: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    key: str
    kind: str
    lines: tuple[Line, ...]
    ride_id: UUID | None = None

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise ValueError("a journal entry needs at least two lines")
        totals: dict[str, int] = defaultdict(int)
        for line in self.lines:
            totals[line.currency] += line.amount
        unbalanced = {c: t for c, t in totals.items() if t != 0}
        if unbalanced:
            raise ValueError(f"journal entry {self.key} does not balance: {unbalanced}")


def balances(lines: Iterable[Line]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        out[(line.account, line.currency)] += line.amount
    return dict(out)


def ride_fare_entry(
    ride_id: UUID, passenger_id: UUID, driver_id: UUID, fare: Money, commission: Money
) -> JournalEntry:
    """The rider owes the fare; the driver earns it less commission; we keep the commission."""
    c = fare.currency
    return JournalEntry(
        key=f"ride:{ride_id}:fare",
        kind="ride_fare",
        ride_id=ride_id,
        lines=(
            Line(account(Account.RIDER_RECEIVABLE, passenger_id), fare.amount, c),
            Line(account(Account.DRIVER_PAYABLE, driver_id), -(fare - commission).amount, c),
            Line(account(Account.PLATFORM_REVENUE), -commission.amount, c),
        ),
    )


def ride_fee_entry(
    ride_id: UUID,
    kind: str,
    passenger_id: UUID,
    driver_id: UUID | None,
    fee: Money,
    commission: Money,
) -> JournalEntry:
    """A cancellation or no-show fee: owed by the rider, shared like a fare."""
    c = fee.currency
    lines: tuple[Line, ...]
    if driver_id is None:
        lines = (
            Line(account(Account.RIDER_RECEIVABLE, passenger_id), fee.amount, c),
            Line(account(Account.PLATFORM_REVENUE), -fee.amount, c),
        )
    else:
        lines = (
            Line(account(Account.RIDER_RECEIVABLE, passenger_id), fee.amount, c),
            Line(account(Account.DRIVER_PAYABLE, driver_id), -(fee - commission).amount, c),
            Line(account(Account.PLATFORM_REVENUE), -commission.amount, c),
        )
    return JournalEntry(key=f"ride:{ride_id}:{kind}", kind=kind, ride_id=ride_id, lines=lines)


def transfer(
    key: str, kind: str, ride_id: UUID | None, debit: str, credit: str, money: Money
) -> JournalEntry:
    """The simplest entry: `money` moves from the `credit` account to the `debit` one."""
    return JournalEntry(
        key=key,
        kind=kind,
        ride_id=ride_id,
        lines=(
            Line(debit, money.amount, money.currency),
            Line(credit, -money.amount, money.currency),
        ),
    )


def cash_collected_entry(
    ride_id: UUID, passenger_id: UUID, driver_id: UUID, collected: Money
) -> JournalEntry:
    """The driver took cash from the rider: the rider's debt goes down by what was handed
    over (more or less than the fare is recorded as it was), and the driver now holds it."""
    return transfer(
        f"ride:{ride_id}:cash",
        "cash_collected",
        ride_id,
        account(Account.CASH_HELD_BY_DRIVER, driver_id),
        account(Account.RIDER_RECEIVABLE, passenger_id),
        collected,
    )


def card_received_entry(
    payment_id: UUID, ride_id: UUID, passenger_id: UUID, received: Money
) -> JournalEntry:
    """Stripe took the rider's money for us: it sits in Stripe clearing until paid out."""
    return transfer(
        f"payment:{payment_id}:received",
        "card_received",
        ride_id,
        account(Account.STRIPE_CLEARING),
        account(Account.RIDER_RECEIVABLE, passenger_id),
        received,
    )


def refund_entry(
    refund_id: UUID, ride_id: UUID, refunded: Money, *, reversed: bool = False
) -> JournalEntry:
    """Money back to the rider's card: out of Stripe clearing, booked against refunds. A
    refund that failed after it was booked is `reversed`: the money is back in clearing."""
    clearing, refunds = account(Account.STRIPE_CLEARING), account(Account.REFUNDS)
    return transfer(
        f"refund:{refund_id}" + (":reversed" if reversed else ""),
        "refund_reversed" if reversed else "refund",
        ride_id,
        clearing if reversed else refunds,
        refunds if reversed else clearing,
        refunded,
    )


def driver_position(
    balances_by_account: dict[tuple[str, str], int], driver_id: UUID, currency: str
) -> dict[str, int]:
    """What a driver earned, holds in cash, and is owed net (negative: owes the platform).

    `driver_payable` carries credits (negative) for what we owe; `cash_held_by_driver`
    carries debits (positive) for platform money in the driver's pocket.
    """
    payable = balances_by_account.get((account(Account.DRIVER_PAYABLE, driver_id), currency), 0)
    cash = balances_by_account.get((account(Account.CASH_HELD_BY_DRIVER, driver_id), currency), 0)
    return {"earned": -payable, "cash_held": cash, "net_payable": -payable - cash}
