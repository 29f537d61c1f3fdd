"""The worker entry point: `celery -A workers.app worker` (and `beat`, `flower`)."""

from __future__ import annotations

from infra.queue import celery_app
from workers import dispatch, ledger, outbox, positions, rides  # noqa: F401  (registers the tasks)

app = celery_app
