from __future__ import annotations

import uuid

import pytest

from domain.ledger import Account, account, balances
from domain.money import Money
from domain.payouts import PayoutStatus, payout_entry, plan_payout, transfer_key


def test_a_positive_net_is_paid_in_full() -> None:
    plan = plan_payout(1200, 0)
    assert (plan.amount, plan.carry_out, plan.status) == (1200, 0, PayoutStatus.PENDING)


def test_what_a_driver_owes_is_carried_and_taken_from_the_next_statement() -> None:
    owed = plan_payout(-300, 0)
    assert (owed.amount, owed.carry_out, owed.status) == (0, -300, PayoutStatus.CARRIED)
    next_day = plan_payout(1000, owed.carry_out)
    assert (next_day.amount, next_day.carry_out) == (700, 0)
    still_owed = plan_payout(200, owed.carry_out)
    assert (still_owed.amount, still_owed.carry_out) == (0, -100)


def test_zero_is_nothing_to_pay() -> None:
    assert plan_payout(0, 0).status == PayoutStatus.CARRIED


def test_a_credit_is_never_carried() -> None:
    with pytest.raises(ValueError, match="carried"):
        plan_payout(100, 50)


def test_the_payout_entry_settles_the_drivers_payable_from_stripe_clearing() -> None:
    statement, driver = uuid.uuid4(), uuid.uuid4()
    entry = payout_entry(statement, driver, Money(700, "usd"))
    assert entry.key == f"payout:{statement}"
    totals = balances(entry.lines)
    assert totals[(account(Account.DRIVER_PAYABLE, driver), "usd")] == 700
    assert totals[(str(Account.STRIPE_CLEARING), "usd")] == -700


def test_each_attempt_has_its_own_transfer_key() -> None:
    s = uuid.uuid4()
    assert transfer_key(s, 0) != transfer_key(s, 1)
    assert transfer_key(s, 0) == f"payout-{s}-0"
