"""Beat jobs (`domain.usecases.settlement`): close each driver's day from the ledger, and
pay the statements out. Safe to run any number of times."""

from __future__ import annotations

import uuid
from datetime import date

from domain.jobs import Job
from domain.usecases import settlement
from domain.usecases.ports import UnitOfWork
from infra.unit_of_work import make_context
from workers.base import transactional_task


@transactional_task(Job.SETTLE_DAY, max_retries=3)
def settle_day(uow: UnitOfWork, period: str | None = None) -> int:
    """Close `period`, or else every recent day that is over."""
    day = date.fromisoformat(period) if period else None
    return settlement.close_days(uow, make_context(), day)


@transactional_task(Job.PAY_OUT, max_retries=0)
def pay_out(uow: UnitOfWork, retry_after_s: float | None = None) -> int:
    """A payout job for each statement still to pay (refused ones again after
    `retry_after_s`: beat passes `RIDEHAIL_PAYOUT_RETRY_S`)."""
    retry = settlement.PAYOUT_RETRY_S if retry_after_s is None else retry_after_s
    return settlement.send_payouts(uow, make_context(), retry)


@transactional_task(Job.PAY_STATEMENT)
def pay_statement(uow: UnitOfWork, statement_id: str) -> str:
    return settlement.pay_statement(uow, make_context(), uuid.UUID(statement_id))
