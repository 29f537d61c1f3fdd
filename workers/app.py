"""The worker entry point: `celery -A workers.app worker` (and `beat`, `flower`)."""

from __future__ import annotations

import gc
import os
from typing import Any

from celery.signals import (
    celeryd_after_setup,
    setup_logging,
    task_failure,
    task_retry,
    task_success,
    worker_process_init,
    worker_process_shutdown,
)

from infra import logs
from infra.metrics import TASKS, process_exited
from infra.queue import celery_app
from infra.routing import PUSH_QUEUES
from infra.settings import get_settings
from workers import (  # noqa: F401  (registers the tasks)
    dispatch,
    ledger,
    notifications,
    outbox,
    payments,
    positions,
    ratings,
    reconciliation,
    rides,
    settlement,
)

app = celery_app


@setup_logging.connect
def _logs(**_kwargs: object) -> None:
    """Our JSON lines, not Celery's own format (connecting this keeps Celery's hands off)."""
    logs.configure(get_settings().log_format)


@celeryd_after_setup.connect
def _pushes_run_to_their_end(sender: str, instance: Any, conf: Any, **_kwargs: object) -> None:
    """A worker of the push queues only lets a delivery it has begun finish when the broker
    connection drops, instead of terminating it: a delivery terminated between its claim
    and FCM's receipt is a push lost for good (at most once), while one that finishes is
    sent and recorded, and the copy the broker hands out again finds it done. Other
    workers terminate theirs (every money call is keyed, so their copy is safe to run)."""
    queues = set(instance.app.amqp.queues.consume_from)
    if queues and queues <= set(PUSH_QUEUES):
        conf.worker_cancel_long_running_tasks_on_connection_loss = False


@worker_process_init.connect
def _tune_gc(**_kwargs: object) -> None:
    """Measured (bench/dispatch.py): default thresholds give 60-75 ms full collections in
    pool processes, the whole tail of dispatch latency. Freeze what start-up made and
    collect the young generations less eagerly (the API does the same)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)


@task_success.connect
def _succeeded(sender: Any = None, **_kwargs: object) -> None:
    TASKS.labels(getattr(sender, "name", "?"), "success").inc()


@task_retry.connect
def _retried(sender: Any = None, request: Any = None, **_kwargs: object) -> None:
    name = getattr(request, "task", None) or getattr(sender, "name", "?")
    TASKS.labels(name, "retry").inc()


@task_failure.connect
def _failed(sender: Any = None, **_kwargs: object) -> None:
    TASKS.labels(getattr(sender, "name", "?"), "failure").inc()


@worker_process_shutdown.connect
def _gone(**_kwargs: object) -> None:
    process_exited(os.getpid())
