"""The worker entry point: `celery -A workers.app worker` (and `beat`, `flower`)."""

from __future__ import annotations

import gc

from celery.signals import worker_process_init

from infra.queue import celery_app
from workers import (  # noqa: F401  (registers the tasks)
    dispatch,
    ledger,
    notifications,
    outbox,
    payments,
    positions,
    ratings,
    rides,
    settlement,
)

app = celery_app


@worker_process_init.connect
def _tune_gc(**_kwargs: object) -> None:
    """Measured (bench/dispatch.py): default thresholds give 60-75 ms full collections in
    pool processes, the whole tail of dispatch latency. Freeze what start-up made and
    collect the young generations less eagerly (the API does the same)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)
