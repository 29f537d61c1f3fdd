"""Enqueue after commit, through an outbox row written in the same transaction.

`enqueue()` adds an `OutboxMessage` to the session and arranges for the task to
be sent once the transaction commits. The task marks the row completed in its
own transaction; rows never completed (crash between commit and send, broker
down) are sent again by the beat sweep. Tasks are idempotent, so a second
delivery changes nothing.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from infra.db import after_commit, get_engine, utcnow
from infra.models import OutboxMessage
from infra.queue import celery_app

log = logging.getLogger(__name__)


def _send(task: str, kwargs: dict[str, Any], outbox_id: uuid.UUID) -> None:
    celery_app.send_task(task, kwargs={**kwargs, "outbox_id": str(outbox_id)})


def send_now(task: str, **kwargs: Any) -> None:
    """A best-effort job with no transaction behind it (e.g. from the hot path, which has
    none): sent at once, not kept in the outbox. Only for what may be lost."""
    celery_app.send_task(task, kwargs=kwargs)


def enqueue(session: Session, task: str, **kwargs: Any) -> OutboxMessage:
    message = OutboxMessage(task=task, task_kwargs=kwargs)
    session.add(message)
    after_commit(session, partial(_send, task, kwargs, message.id))
    return message


class _CompletedSoon:
    """Marks outbox rows completed a moment later, in batches, off the request's path.

    For jobs done in-process (`run_here`): their row's completion is advisory, since the job
    is idempotent. If this process dies before a batch is written, the sweep sends those
    jobs to a worker, which repeats them and changes nothing."""

    def __init__(self, wait_s: float = 0.2) -> None:
        self.wait_s = wait_s
        self._ids: queue.SimpleQueue[uuid.UUID] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = 0

    def add(self, outbox_id: uuid.UUID) -> None:
        self._ids.put(outbox_id)
        if self._pid != os.getpid():  # first use in this process (prefork children too)
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    threading.Thread(target=self._run, name="outbox-completed", daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = [self._ids.get()]
            time.sleep(self.wait_s)  # let the batch fill
            while True:
                try:
                    batch.append(self._ids.get_nowait())
                except queue.Empty:
                    break
            try:
                with get_engine().begin() as conn:
                    conn.execute(
                        update(OutboxMessage)
                        .where(col(OutboxMessage.id).in_(batch))
                        .values(completed_at=utcnow())
                    )
            except Exception:  # the sweep repeats these jobs; nothing is lost
                log.warning("outbox: could not mark %d in-process job(s) completed", len(batch))


_completed_soon = _CompletedSoon()


class _RetrySoon:
    """Tries again, in this process, an in-process job that failed (Redis restarting at
    the commit): after 0.5, 1, 2, 4 and 8 s, so a blip costs a live view a second, not the
    minute the outbox sweep waits. If all fail, or the process dies first, the sweep sends
    the job to a worker as before; the jobs are idempotent, so a late repeat is harmless."""

    delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[float, int, str, Callable[[], None], uuid.UUID]]
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = 0

    def add(self, task: str, work: Callable[[], None], outbox_id: uuid.UUID) -> None:
        if not self.delays_s:
            return
        self._jobs.put((time.monotonic() + self.delays_s[0], 0, task, work, outbox_id))
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid = os.getpid()
                    threading.Thread(target=self._run, name="outbox-retry", daemon=True).start()

    def _run(self) -> None:
        waiting: list[tuple[float, int, str, Callable[[], None], uuid.UUID]] = []
        while True:
            timeout = max(0.0, min(w[0] for w in waiting) - time.monotonic()) if waiting else None
            try:
                waiting.append(self._jobs.get(timeout=timeout))
                continue  # take every new one before trying any
            except queue.Empty:
                pass
            now = time.monotonic()
            due = [w for w in waiting if w[0] <= now]
            waiting = [w for w in waiting if w[0] > now]
            for _at, tries, task, work, outbox_id in due:
                try:
                    work()
                except Exception:
                    if tries + 1 < len(self.delays_s):
                        at = time.monotonic() + self.delays_s[tries + 1]
                        waiting.append((at, tries + 1, task, work, outbox_id))
                    else:
                        log.warning("outbox: %s still failing; left to the sweep", task)
                    continue
                _completed_soon.add(outbox_id)


_retry_soon = _RetrySoon()


def run_here(session: Session, task: str, work: Callable[[], None], **kwargs: Any) -> None:
    """A job the committing process does itself, right after the commit (`work`), with the
    outbox's guarantee: its row is written with the transaction and marked completed
    once `work` succeeded. If `work` fails it is tried again here a few times over some
    seconds; if those fail too, or the process dies first, the row stays pending and the
    outbox sweep sends `task(**kwargs)` to a worker."""
    message = OutboxMessage(task=task, task_kwargs=kwargs)
    session.add(message)
    outbox_id = message.id

    def done_here() -> None:
        try:
            work()
        except Exception:
            log.warning("outbox: %s failed in-process; tried again shortly", task)
            _retry_soon.add(task, work, outbox_id)
            return
        _completed_soon.add(outbox_id)

    after_commit(session, done_here)


def mark_completed(session: Session, outbox_id: str | None) -> None:
    if not outbox_id:
        return
    message = session.get(OutboxMessage, uuid.UUID(outbox_id))
    if message is not None and message.completed_at is None:
        message.completed_at = utcnow()


def mark_failed(session: Session, outbox_id: str | None, error: str) -> None:
    if not outbox_id:
        return
    message = session.get(OutboxMessage, uuid.UUID(outbox_id))
    if message is not None and message.completed_at is None:
        message.failed_at = utcnow()
        message.last_error = error[:2000]


def prune_completed(session: Session, older_than_s: int = 86_400, limit: int = 5_000) -> int:
    """Completed messages are history after a day; keep the table small for the sweep."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    ids = session.exec(
        select(OutboxMessage.id).where(col(OutboxMessage.completed_at) < cutoff).limit(limit)
    ).all()
    if ids:
        session.exec(delete(OutboxMessage).where(col(OutboxMessage.id).in_(ids)))
    return len(ids)


# A message is lost again each time the worker that took it dies: its next re-send waits
# 1, 2, then 4 periods, never longer, so once the faults stop every job is done within
# a few minutes (a job that fails for good is marked failed by its retries, not here).
MAX_BACKOFF = 4


def redispatch_stale(session: Session, older_than_s: float, limit: int = 500) -> int:
    """Send again the messages nobody completed; back off by their attempts."""
    now = utcnow()
    rows = session.exec(
        select(OutboxMessage)
        .where(
            col(OutboxMessage.completed_at).is_(None),
            col(OutboxMessage.failed_at).is_(None),
            col(OutboxMessage.created_at) < now - timedelta(seconds=older_than_s),
        )
        .order_by(col(OutboxMessage.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent = 0
    for message in rows:
        wait = older_than_s * min(2**message.attempts, MAX_BACKOFF)
        if message.dispatched_at and message.dispatched_at > now - timedelta(seconds=wait):
            continue
        message.attempts += 1
        message.dispatched_at = now
        after_commit(session, partial(_send, message.task, message.task_kwargs, message.id))
        sent += 1
    if sent:
        log.warning("outbox: re-dispatching %d message(s) never completed", sent)
    return sent


class OutboxJobs:
    """The `JobQueue` port: jobs written to the outbox in this transaction, sent once it
    commits."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def enqueue(self, task: str, **kwargs: Any) -> None:
        enqueue(self.session, task, **kwargs)

    def run_here(self, task: str, work: Callable[[], None], **kwargs: Any) -> None:
        run_here(self.session, task, work, **kwargs)

    def resend_stale(self, older_than_s: float) -> int:
        prune_completed(self.session)
        return redispatch_stale(self.session, older_than_s)

    def complete(self, job_id: str | None) -> None:
        mark_completed(self.session, job_id)
