"""Beat jobs: close each driver's day from the ledger, and pay the statements out.

A statement (once per driver, UTC day and currency): what the driver earned (card and
cash fares and fees, less commission), the cash they took (the platform's, in their
pocket), and the net. `domain.payouts` decides what is paid: the net plus what the driver
still owed from their previous statement, by one Stripe Connect transfer to their
account, or carried into the next statement when it is not positive.

Both jobs are safe to run any number of times: a statement is made once (a unique
constraint), a payout is one transfer (an idempotency key per statement and attempt,
the statement's row lock) and one journal entry (`payout:<statement>`), so statements,
transfers and the ledger agree to the cent however often beat fires.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from domain.jobs import Job
from domain.ledger import Account
from domain.money import Money
from domain.payments import PaymentRefused
from domain.payouts import (
    OPEN_PAYOUTS,
    PayoutStatus,
    payout_entry,
    plan_payout,
    transfer_key,
)
from infra import jobs
from infra.db import utcnow
from infra.ledger import SqlLedger, driver_day_lines
from infra.models import Settlement, User
from infra.settings import get_settings
from infra.stripe_gateway import StripeGateway
from workers.base import Retryable, transactional_task

log = logging.getLogger("ridehail.settlement")

# a day is closed this long after midnight UTC, when no transaction of that day is open
CLOSE_AFTER = timedelta(minutes=15)
CATCH_UP_DAYS = 3  # a beat that was down for a day or two catches up on its own


def _previous_carry(session: Session, driver: uuid.UUID, currency: str, day: str) -> int:
    before = session.exec(
        select(Settlement.carry_out)
        .where(
            Settlement.driver_id == driver,
            Settlement.currency == currency,
            col(Settlement.period) < day,
        )
        .order_by(col(Settlement.period).desc())
        .limit(1)
    ).first()
    return before or 0


def close_day(session: Session, day: date) -> int:
    """Make the day's statements that do not exist yet; how many were made."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(
        lambda: {"earned": 0, "cash_held": 0}
    )
    rides: dict[tuple[str, str], set[str]] = defaultdict(set)
    for account, currency, amount, ride_id in driver_day_lines(
        session, start, start + timedelta(days=1)
    ):
        kind, _, driver = account.partition(":")
        key = (driver, currency)
        if kind == Account.DRIVER_PAYABLE:
            totals[key]["earned"] += -amount
        else:
            totals[key]["cash_held"] += amount
        if ride_id:
            rides[key].add(str(ride_id))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    made = 0
    table = Settlement.__table__  # type: ignore[attr-defined]
    period = day.isoformat()
    for (driver, currency), t in sorted(totals.items()):
        net = t["earned"] - t["cash_held"]
        carried_in = _previous_carry(session, uuid.UUID(driver), currency, period)
        plan = plan_payout(net, carried_in)
        stmt = (
            insert(table)
            .values(
                id=uuid.uuid4(),
                driver_id=uuid.UUID(driver),
                period=period,
                currency=currency,
                earned=t["earned"],
                cash_held=t["cash_held"],
                net=net,
                rides=len(rides[(driver, currency)]),
                created_at=utcnow(),
                carried_in=carried_in,
                payout_amount=plan.amount,
                carry_out=plan.carry_out,
                payout_status=plan.status,
                payout_attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["driver_id", "period", "currency"])
            .returning(table.c.id)
        )
        made += session.execute(stmt).first() is not None
    return made


@transactional_task(Job.SETTLE_DAY, max_retries=3)
def settle_day(session: Session, period: str | None = None) -> int:
    """Close `period`, or else every recent day that is over (oldest first, so what a
    driver owes is carried in order)."""
    if period:
        return close_day(session, date.fromisoformat(period))
    last = (utcnow() - CLOSE_AFTER).date() - timedelta(days=1)
    made = 0
    for back in range(CATCH_UP_DAYS - 1, -1, -1):
        made += close_day(session, last - timedelta(days=back))
    if made:
        log.info("settlement: %d statement(s) made", made)
    return made


@transactional_task(Job.PAY_OUT, max_retries=0)
def pay_out(session: Session, retry_after_s: float | None = None) -> int:
    """Send a payout job for each statement still to pay (new ones, and payable ones whose
    last attempt is older than `retry_after_s`, from beat's `RIDEHAIL_PAYOUT_RETRY_S`)."""
    if retry_after_s is None:
        retry_after_s = get_settings().payout_retry_s
    retry_before = utcnow() - timedelta(seconds=retry_after_s)
    due = session.exec(
        select(Settlement.id)
        .where(
            col(Settlement.payout_status).in_(OPEN_PAYOUTS),
            col(Settlement.payout_tried_at).is_(None)
            | (col(Settlement.payout_tried_at) < retry_before),
        )
        .order_by(col(Settlement.period))
        .limit(500)
    ).all()
    for statement_id in due:
        jobs.enqueue(session, Job.PAY_STATEMENT, statement_id=str(statement_id))
    return len(due)


@transactional_task(Job.PAY_STATEMENT)
def pay_statement(session: Session, statement_id: str) -> str:
    """One statement's transfer, made once. Stripe's refusal (no funds available yet, an
    account not onboarded) leaves it payable for the next run; a fault is retried."""
    st = session.get(Settlement, uuid.UUID(statement_id), with_for_update=True)
    if st is None:
        raise Retryable(f"statement {statement_id} not visible yet")
    if st.payout_status not in OPEN_PAYOUTS:
        return st.payout_status
    st.payout_tried_at = utcnow()
    session.add(st)
    driver = session.get(User, st.driver_id)
    if driver is None or not driver.stripe_account_id:
        st.payout_status, st.payout_error = PayoutStatus.PAYABLE, "no_payout_account"
        return st.payout_status
    try:
        st.transfer_id = StripeGateway(retries=0).transfer(
            key=transfer_key(st.id, st.payout_attempts),
            statement_id=st.id,
            driver_id=st.driver_id,
            destination=driver.stripe_account_id,
            amount=st.payout_amount,
            currency=st.currency,
        )
    except PaymentRefused as exc:
        st.payout_status, st.payout_error = PayoutStatus.PAYABLE, exc.code
        st.payout_attempts += 1
        log.warning("payout of statement %s refused: %s (%s)", st.id, exc.code, exc.detail)
        return st.payout_status
    st.payout_status, st.payout_error, st.paid_at = PayoutStatus.PAID, None, utcnow()
    SqlLedger(session).post(payout_entry(st.id, st.driver_id, Money(st.payout_amount, st.currency)))
    return st.payout_status
