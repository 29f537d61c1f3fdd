"""Ride events reach the ledger through the outbox and a real worker, exactly once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from infra import jobs
from infra.db import get_engine, session_scope, utcnow
from infra.queue import celery_app
from tests.factories import advance, register, request_ride
from tests.wait import until


def _entries(ride_id: str) -> list[Any]:
    with get_engine().connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT e.key, l.account, l.amount, l.currency FROM journal_entries e "
                    "JOIN ledger_lines l ON l.entry_id = e.id WHERE e.ride_id = :r "
                    "ORDER BY l.id"
                ),
                {"r": ride_id},
            ).all()
        )


def _outbox(ride_id: str) -> list[Any]:
    with get_engine().connect() as conn:
        rows = conn.execute(text("SELECT * FROM outbox")).mappings().all()
    return [r for r in rows if r["task_kwargs"].get("ride_id") == ride_id]


def test_a_completed_ride_is_posted_to_the_ledger_once(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    done = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    fare = done["fare"]["amount"]

    lines = until(lambda: _entries(ride["id"]))
    assert {row.key for row in lines} == {f"ride:{ride['id']}:fare"}
    by_account = {row.account: row.amount for row in lines}
    commission = (fare * settings.fare.commission_bp + 5_000) // 10_000
    assert by_account == {
        f"rider_receivable:{p.id}": fare,
        f"driver_payable:{d.id}": -(fare - commission),
        "platform_revenue": -commission,
    }
    assert sum(by_account.values()) == 0
    # both jobs of the completion ran and marked their outbox rows done
    until(
        lambda: (
            {"ledger.post_ride", "rides.store_trip"}
            <= {m["task"] for m in _outbox(ride["id"]) if m["completed_at"]}
        )
    )

    # a duplicate delivery (redelivery, a second sweep) changes nothing
    for _ in range(2):
        result = celery_app.send_task("ledger.post_ride", kwargs={"ride_id": ride["id"]})
        assert result.get(timeout=15) == "duplicate"
    assert len(_entries(ride["id"])) == 3


def test_a_late_cancellation_posts_its_fee(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET accepted_at = :t WHERE id = :id"),
            {"t": utcnow() - timedelta(minutes=10), "id": ride["id"]},
        )
    client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers)
    lines = until(lambda: _entries(ride["id"]))
    assert {row.key for row in lines} == {f"ride:{ride['id']}:cancellation_fee"}
    assert sum(row.amount for row in lines) == 0
    assert {row.account: row.amount for row in lines}[f"rider_receivable:{p.id}"] == (
        settings.fare.cancellation_fee
    )


def test_a_free_cancellation_posts_nothing(client: TestClient) -> None:
    p = register(client, "passenger")
    ride = request_ride(client, p)
    client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers)
    until(lambda: [m for m in _outbox(ride["id"]) if m["completed_at"]])
    assert _entries(ride["id"]) == []


def test_a_job_lost_between_commit_and_send_is_sent_again_by_the_sweep(
    client: TestClient,
) -> None:
    """Simulate a crash after commit: the outbox row exists, the broker never heard of it."""
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive", "start")
    # complete the ride by hand, as a process that died before enqueueing would leave it
    with session_scope() as session:
        session.exec(  # type: ignore[call-overload]
            text(
                "UPDATE rides SET status='completed', fare_amount=1234, completed_at=now() "
                "WHERE id = :id"
            ).bindparams(id=uuid.UUID(ride["id"]))
        )
        message = jobs.enqueue(session, "ledger.post_ride", ride_id=ride["id"])
        session.info["after_commit"].clear()  # the crash: nothing reaches the broker
        message.created_at = utcnow() - timedelta(minutes=5)
    assert _entries(ride["id"]) == []

    swept = celery_app.send_task("outbox.redispatch").get(timeout=15)
    assert swept == 1
    lines = until(lambda: _entries(ride["id"]))
    assert {row.account: row.amount for row in lines}[f"rider_receivable:{p.id}"] == 1234
    until(lambda: [m for m in _outbox(ride["id"]) if m["completed_at"]])
    # a sweep right after sends nothing: the message is done
    assert celery_app.send_task("outbox.redispatch").get(timeout=15) == 0


def test_the_sweep_prunes_completed_messages_after_a_day(client: TestClient) -> None:
    with session_scope() as session:
        old = jobs.enqueue(session, "ledger.post_ride", ride_id=str(uuid.uuid4()))
        session.info["after_commit"].clear()
        old.created_at = old.completed_at = utcnow() - timedelta(days=2)
        recent = jobs.enqueue(session, "ledger.post_ride", ride_id=str(uuid.uuid4()))
        session.info["after_commit"].clear()
        recent.completed_at = utcnow()
    celery_app.send_task("outbox.redispatch").get(timeout=15)
    with get_engine().connect() as conn:
        left = {r[0] for r in conn.execute(text("SELECT id FROM outbox")).all()}
    assert left == {recent.id}
