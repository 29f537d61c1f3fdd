"""Card money movement's tasks, on the `payments` queue: each calls its use case
(`domain.usecases.card_payments`) on a unit of work whose Stripe client does not retry on
its own (Celery retries with backoff; the idempotency keys make that safe)."""

from __future__ import annotations

import uuid

from domain.jobs import Job
from domain.usecases import card_payments as card
from domain.usecases.ports import UnitOfWork
from infra.metrics import WEBHOOK_LAG
from infra.unit_of_work import make_context
from workers.base import transactional_task


@transactional_task(Job.AUTHORIZE_RIDE)
def authorize_ride(uow: UnitOfWork, ride_id: str) -> str:
    return card.authorize_ride(uow, make_context(), uuid.UUID(ride_id))


@transactional_task(Job.SETTLE_RIDE)
def settle_ride(uow: UnitOfWork, ride_id: str) -> str:
    return card.settle_ride(uow, make_context(), uuid.UUID(ride_id))


@transactional_task(Job.RECONCILE_EVENT)
def reconcile_event(uow: UnitOfWork, event_id: str) -> str:
    done = card.reconcile_event(uow, make_context(), event_id)
    if done.lag_s is not None:
        WEBHOOK_LAG.observe(done.lag_s)
    return done.result


@transactional_task(Job.REFUND)
def refund(uow: UnitOfWork, refund_id: str) -> str:
    return card.refund(uow, make_context(), uuid.UUID(refund_id))
