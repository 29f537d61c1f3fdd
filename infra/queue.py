"""The Celery application object: the API sends by task name, workers register tasks on it."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from infra.logs import HEADER, request_id, task_name
from infra.metrics import TASKS_SENT

celery_app = Celery("ridehail")
celery_app.config_from_object("celeryconfig")


@before_task_publish.connect
def _carry_request_id(
    headers: dict[str, Any] | None = None, sender: str | None = None, **_kwargs: object
) -> None:
    """A task sent while serving a request (or running a task) carries that request's id."""
    TASKS_SENT.labels(sender or "?").inc()
    rid = request_id.get()
    if rid and headers is not None:
        headers.setdefault(HEADER, rid)


@task_prerun.connect
def _take_request_id(task: Any = None, **_kwargs: object) -> None:
    request_id.set(getattr(task.request, HEADER, None) if task is not None else None)
    task_name.set(getattr(task, "name", None))


@task_postrun.connect
def _drop_request_id(**_kwargs: object) -> None:
    request_id.set(None)
    task_name.set(None)
