"""The worker entry point: `celery -A workers.app worker` (and `beat`, `flower`)."""

from __future__ import annotations

from infra.queue import celery_app
from workers import (  # noqa: F401  (registers the tasks)
    dispatch,
    ledger,
    outbox,
    payments,
    positions,
    rides,
)

app = celery_app
