"""The outbox sweep: a job nobody completed is sent again, backing off by its attempts,
but never so far that a job lost a few times waits long after the faults stop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import select

import infra.jobs
from infra.db import session_scope, utcnow
from infra.models import OutboxMessage


def _sent(monkeypatch: Any) -> list[str]:
    sent: list[str] = []
    monkeypatch.setattr(infra.jobs, "_send", lambda task, _kwargs, _id: sent.append(task))
    return sent


def _row(**values: Any) -> None:
    with session_scope() as session:
        session.add(OutboxMessage(task="rides.publish", task_kwargs={}, **values))


def _sweep() -> int:
    with session_scope() as session:
        return infra.jobs.redispatch_stale(session, older_than_s=60)


def test_a_job_never_completed_is_sent_again_and_backs_off(db: None, monkeypatch: Any) -> None:
    sent = _sent(monkeypatch)
    _row(created_at=utcnow() - timedelta(seconds=61))
    _row(created_at=utcnow() - timedelta(seconds=30))  # young: its worker may be on it
    assert _sweep() == 1
    assert sent == ["rides.publish"]
    assert _sweep() == 0  # sent a moment ago: it waits two periods now
    with session_scope() as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.attempts == 1)).one()
        row.dispatched_at = utcnow() - timedelta(seconds=121)
    assert _sweep() == 1
    assert len(sent) == 2


def test_a_job_lost_many_times_waits_four_periods_at_most(db: None, monkeypatch: Any) -> None:
    sent = _sent(monkeypatch)
    old = utcnow() - timedelta(hours=1)
    _row(created_at=old, attempts=6, dispatched_at=utcnow() - timedelta(seconds=230))
    assert _sweep() == 0
    _row(created_at=old, attempts=6, dispatched_at=utcnow() - timedelta(seconds=241))
    assert _sweep() == 1
    assert sent == ["rides.publish"]


def test_a_completed_or_failed_job_is_left_alone(db: None, monkeypatch: Any) -> None:
    sent = _sent(monkeypatch)
    old = utcnow() - timedelta(hours=1)
    _row(created_at=old, completed_at=old)
    _row(created_at=old, failed_at=old, last_error="gave up")
    assert _sweep() == 0
    assert sent == []
