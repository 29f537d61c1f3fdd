"""The task wrapper: one unit of work per task, retries with backoff, a visible failure.

`transactional_task` turns `fn(uow, **kwargs)` into a Celery task that runs `fn` in one
unit of work (one transaction), closes its outbox row in the same transaction, retries
transient errors (`infra.unit_of_work.TRANSIENT`) with exponential backoff and jitter,
and when it gives up marks the outbox row failed and logs an alert. `fn` loads what the
job names, calls a use case and maps its answer; it holds no rule of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery import Task

from infra.queue import celery_app
from infra.unit_of_work import TRANSIENT, job_gave_up, sql_unit_of_work

log = logging.getLogger("ridehail.tasks")

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RetryIn:
    """Returned (not raised) by a task that did part of its work and must come back in
    `seconds` (e.g. FCM's Retry-After): what it did stays committed, its outbox row stays
    open, and Celery runs it again then, within its bounded retries."""

    seconds: float


class RidehailTask(Task):
    abstract = True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        outbox_id = kwargs.get("outbox_id") if isinstance(kwargs, dict) else None
        log.error("ALERT task %s[%s] gave up: %r (outbox %s)", self.name, task_id, exc, outbox_id)
        try:
            job_gave_up(outbox_id, repr(exc))
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
            # Stripe calls are not retried inside a job: the job itself is, with backoff
            with sql_unit_of_work(stripe_retries=0) as uow:
                result = fn(uow, **kwargs)
                if not isinstance(result, RetryIn):
                    uow.jobs.complete(outbox_id)
            if isinstance(result, RetryIn):
                raise self.retry(
                    countdown=result.seconds, kwargs={**kwargs, "outbox_id": outbox_id}
                )
            return result

        return task

    return decorate
