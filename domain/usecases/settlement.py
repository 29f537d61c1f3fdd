"""Closing each driver's day from the ledger, and paying the statements out.

A statement (once per driver, UTC day and currency): what the driver earned (card and
cash fares and fees, less commission), the cash they took (the platform's, in their
pocket), and the net. `domain.payouts` decides what is paid: the net plus what the driver
still owed from their previous statement, by one transfer to their account, or carried
into the next statement when it is not positive.

Each step is safe to repeat: a statement is made once (per driver, day and currency), a
payout is one transfer (keyed per statement and attempt, under the statement's row lock)
and one journal entry (`payout:<statement>`), so statements, transfers and the ledger
agree to the cent however often beat fires.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from domain.errors import NotVisibleYet
from domain.jobs import Job
from domain.ledger import Account
from domain.money import Money
from domain.payments import PaymentRefused
from domain.payouts import OPEN_PAYOUTS, PayoutStatus, payout_entry, plan_payout, transfer_key
from domain.usecases.context import Context
from domain.usecases.ports import NewStatement, UnitOfWork

# a day is closed this long after midnight UTC, when no transaction of that day is open
CLOSE_AFTER = timedelta(minutes=15)
CATCH_UP_DAYS = 3  # a beat that was down for a day or two catches up on its own
# a refused payout is tried again this long after (beat passes RIDEHAIL_PAYOUT_RETRY_S)
PAYOUT_RETRY_S = 3600.0

log = logging.getLogger("ridehail.settlement")


def close_day(uow: UnitOfWork, day: date) -> int:
    """Make the day's statements that do not exist yet; how many were made."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    earned: dict[tuple[UUID, str], int] = defaultdict(int)
    cash_held: dict[tuple[UUID, str], int] = defaultdict(int)
    rides: dict[tuple[UUID, str], set[UUID]] = defaultdict(set)
    for account, currency, amount, ride_id in uow.statements.driver_lines(
        start, start + timedelta(days=1)
    ):
        kind, _, driver = account.partition(":")
        key = (UUID(driver), currency)
        if kind == Account.DRIVER_PAYABLE:
            earned[key] += -amount
        else:
            cash_held[key] += amount
        if ride_id:
            rides[key].add(ride_id)
    period = day.isoformat()
    made = 0
    for driver_id, currency in sorted(earned.keys() | cash_held.keys()):
        key = (driver_id, currency)
        net = earned[key] - cash_held[key]
        carried_in = uow.statements.carried_before(driver_id, currency, period)
        plan = plan_payout(net, carried_in)
        made += uow.statements.add_once(
            NewStatement(
                driver_id=driver_id,
                period=period,
                currency=currency,
                earned=earned[key],
                cash_held=cash_held[key],
                net=net,
                rides=len(rides[key]),
                carried_in=carried_in,
                payout_amount=plan.amount,
                carry_out=plan.carry_out,
                payout_status=plan.status,
            )
        )
    return made


def close_days(uow: UnitOfWork, ctx: Context, period: date | None = None) -> int:
    """Close `period`, or else every recent day that is over (oldest first, so what a
    driver owes is carried in order)."""
    if period is not None:
        return close_day(uow, period)
    last = (ctx.now - CLOSE_AFTER).date() - timedelta(days=1)
    days = [last - timedelta(days=back) for back in range(CATCH_UP_DAYS - 1, -1, -1)]
    made = sum(close_day(uow, day) for day in days)
    if made:
        log.info("settlement: %d statement(s) made", made)
    return made


def send_payouts(uow: UnitOfWork, ctx: Context, retry_after_s: float) -> int:
    """A payout job for each statement still to pay: new ones, and payable ones whose last
    attempt is older than `retry_after_s`."""
    due = uow.statements.due(ctx.now - timedelta(seconds=retry_after_s), limit=500)
    for statement_id in due:
        uow.jobs.enqueue(Job.PAY_STATEMENT, statement_id=str(statement_id))
    return len(due)


def pay_statement(uow: UnitOfWork, ctx: Context, statement_id: UUID) -> str:
    """One statement's transfer, made once. A refusal (no funds available yet, an account
    not set up) leaves it payable for the next run; a fault is retried by the caller."""
    st = uow.statements.get(statement_id)
    if st is None:
        raise NotVisibleYet(f"statement {statement_id} not visible yet")
    if st.payout_status not in OPEN_PAYOUTS:
        return str(st.payout_status)
    st.payout_tried_at = ctx.now
    try:
        _pay(uow, ctx, st)
    finally:
        uow.statements.save(st)
    return str(st.payout_status)


def _pay(uow: UnitOfWork, ctx: Context, st: Any) -> None:
    account = uow.payout_accounts.account_of(st.driver_id)
    if account is None:
        st.payout_status, st.payout_error = PayoutStatus.PAYABLE, "no_payout_account"
        return
    try:
        st.transfer_id = uow.card_gateway.transfer(
            key=transfer_key(st.id, st.payout_attempts),
            statement_id=st.id,
            driver_id=st.driver_id,
            destination=account,
            amount=st.payout_amount,
            currency=st.currency,
        )
    except PaymentRefused as exc:
        st.payout_status, st.payout_error = PayoutStatus.PAYABLE, exc.code
        st.payout_attempts += 1
        log.warning("payout of statement %s refused: %s (%s)", st.id, exc.code, exc.detail)
        return
    st.payout_status, st.payout_error, st.paid_at = PayoutStatus.PAID, None, ctx.now


def collect(uow: UnitOfWork) -> None:
    """A statement paid in this unit of work is booked: one journal entry (its key), the
    driver's payable down by what was transferred (called just before the commit)."""
    for st, was in uow.statements.changed():
        if st.payout_status == PayoutStatus.PAID != was["payout_status"]:
            uow.ledger.post(payout_entry(st.id, st.driver_id, Money(st.payout_amount, st.currency)))
