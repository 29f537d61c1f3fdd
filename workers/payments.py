"""Card money movement's tasks, on the `payments` queue: each loads nothing itself, calls
its use case (`domain.usecases.card_payments`) on a unit of work whose Stripe client does
not retry on its own (Celery retries with backoff; the idempotency keys make that safe),
and turns "not visible yet" into a retry."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from sqlmodel import Session

from domain.jobs import Job
from domain.usecases import card_payments as card
from infra.metrics import WEBHOOK_LAG
from infra.unit_of_work import SqlUnitOfWork, make_context
from workers.base import Retryable, transactional_task

R = TypeVar("R")


def _run(session: Session, use_case: Callable[[SqlUnitOfWork], R]) -> R:
    try:
        return use_case(SqlUnitOfWork(session, stripe_retries=0))
    except card.NotVisibleYet as exc:
        raise Retryable(str(exc)) from exc


@transactional_task(Job.AUTHORIZE_RIDE)
def authorize_ride(session: Session, ride_id: str) -> str:
    return _run(session, lambda uow: card.authorize_ride(uow, make_context(), uuid.UUID(ride_id)))


@transactional_task(Job.SETTLE_RIDE)
def settle_ride(session: Session, ride_id: str) -> str:
    return _run(session, lambda uow: card.settle_ride(uow, make_context(), uuid.UUID(ride_id)))


@transactional_task(Job.RECONCILE_EVENT)
def reconcile_event(session: Session, event_id: str) -> str:
    done = _run(session, lambda uow: card.reconcile_event(uow, make_context(), event_id))
    if done.lag_s is not None:
        WEBHOOK_LAG.observe(done.lag_s)
    return done.result


@transactional_task(Job.REFUND)
def refund(session: Session, refund_id: str) -> str:
    return _run(session, lambda uow: card.refund(uow, make_context(), uuid.UUID(refund_id)))
