"""The task wrapper: one transaction per task, retries with backoff, a visible failure.

`transactional_task` turns `fn(session, **kwargs)` into a Celery task that runs
`fn` inside `session_scope()`, marks its outbox row completed in the same
transaction, retries transient errors with exponential backoff and jitter, and
when it gives up marks the outbox row failed and logs an alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe
from celery import Task
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from domain.payments import ProviderUnavailable
from infra import jobs
from infra.db import session_scope
from infra.queue import celery_app

log = logging.getLogger("ridehail.tasks")

R = TypeVar("R")


class Retryable(Exception):
    """State this task depends on is not there yet (e.g. the producer has not committed)."""


@dataclass(frozen=True, slots=True)
class RetryIn:
    """Returned (not raised) by a task that did part of its work and must come back in
    `seconds` (e.g. FCM's Retry-After): what it did stays committed, its outbox row stays
    open, and Celery runs it again then, within its bounded retries."""

    seconds: float


TRANSIENT: tuple[type[BaseException], ...] = (
    Retryable,
    OperationalError,
    DBAPIError,
    ConnectionError,
    # Stripe: network, 429, 5xx. Card errors are answers, not retried.
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    ProviderUnavailable,  # the gateway's word for all of the above
)


class RidehailTask(Task):
    abstract = True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        outbox_id = kwargs.get("outbox_id") if isinstance(kwargs, dict) else None
        log.error("ALERT task %s[%s] gave up: %r (outbox %s)", self.name, task_id, exc, outbox_id)
        try:
            with session_scope() as session:
                jobs.mark_failed(session, outbox_id, repr(exc))
        except Exception:
            log.exception("could not record the failure of %s[%s]", self.name, task_id)


def transactional_task(
    name: str, *, max_retries: int = 8, **options: Any
) -> Callable[[Callable[..., R]], Any]:
    def decorate(fn: Callable[..., R]) -> Any:
        @celery_app.task(
            name=name,
            base=RidehailTask,
            bind=True,
            autoretry_for=TRANSIENT,
            retry_backoff=True,
            retry_backoff_max=300,
            retry_jitter=True,
            max_retries=max_retries,
            **options,
        )
        def task(self: Task, outbox_id: str | None = None, **kwargs: Any) -> R:
            session: Session
            with session_scope() as session:
                result = fn(session, **kwargs)
                if not isinstance(result, RetryIn):
                    jobs.mark_completed(session, outbox_id)
            if isinstance(result, RetryIn):
                raise self.retry(
                    countdown=result.seconds, kwargs={**kwargs, "outbox_id": outbox_id}
                )
            return result

        task.run_fn = fn  # the plain function, for tests of the logic alone
        return task

    return decorate
