"""Paying drivers their statements (Stripe Connect transfers), as pure rules.

A statement's net (earned less the cash the driver took) plus what was carried in from
the statement before it is what the platform owes. Positive: paid by one transfer. Zero
or negative (commission owed on cash): nothing is paid and the amount is carried into
the driver's next statement. A payout that could not be made (no connected account yet,
a transfer Stripe refused) stays payable and is tried again by the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from domain.ledger import Account, JournalEntry, account, transfer
from domain.money import Money


class PayoutStatus(StrEnum):
    """Where a statement's payout is: `pending` (not tried yet), `paid`, `carried`
    (nothing to pay: carried into the next statement), `payable` (tried and not paid:
    tried again)."""

    PENDING = "pending"  # to be paid, not tried yet
    PAID = "paid"
    CARRIED = "carried"  # nothing to pay: carried into the next statement
    PAYABLE = "payable"  # tried and not paid (no account, refused): tried again


OPEN_PAYOUTS = (PayoutStatus.PENDING, PayoutStatus.PAYABLE)


@dataclass(frozen=True, slots=True)
class PayoutPlan:
    amount: int  # to transfer
    carry_out: int  # <= 0: owed by the driver, into their next statement
    status: PayoutStatus


def plan_payout(net: int, carried_in: int) -> PayoutPlan:
    """`carried_in` is the previous statement's `carry_out` (never positive)."""
    if carried_in > 0:
        raise ValueError("only what a driver owes is carried")
    total = net + carried_in
    if total > 0:
        return PayoutPlan(total, 0, PayoutStatus.PENDING)
    return PayoutPlan(0, total, PayoutStatus.CARRIED)


def payout_entry(statement_id: UUID, driver_id: UUID, paid: Money) -> JournalEntry:
    """What we owed the driver left our Stripe balance for their connected account."""
    return transfer(
        f"payout:{statement_id}",
        "payout",
        None,
        account(Account.DRIVER_PAYABLE, driver_id),
        account(Account.STRIPE_CLEARING),
        paid,
    )


def transfer_key(statement_id: UUID, attempt: int) -> str:
    """One key per attempt: a retry of the same attempt (a crash, a timeout) is answered
    once by Stripe; an attempt Stripe refused moved no money, so the next one may differ."""
    return f"payout-{statement_id}-{attempt}"
