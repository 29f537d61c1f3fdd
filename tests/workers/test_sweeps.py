"""The reconciliation sweeps repair injected stuck states (real worker, PostgreSQL, Redis,
the Stripe stand-in), count what they repaired, and leave a repaired state alone."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine, utcnow
from infra.metrics import REPAIRS
from infra.queue import celery_app
from tests.factories import (
    advance,
    card_passenger,
    card_ride,
    held,
    payment_row,
    register,
    request_ride,
)
from tests.wait import until

pytestmark = pytest.mark.live_state


def _sql(sql: str, **params: Any) -> None:
    with get_engine().begin() as conn:
        conn.execute(text(sql), params)


def _one(sql: str, **params: Any) -> Any:
    with get_engine().connect() as conn:
        return conn.execute(text(sql), params).mappings().first()


def _run(task: str, **kwargs: Any) -> Any:
    return celery_app.send_task(task, kwargs=kwargs).get(timeout=30)


def _repairs(sweep: str, action: str) -> float:
    return REPAIRS.labels(sweep, action)._value.get()


def _kinds(user_id: str, ride_id: str) -> list[str]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            text("SELECT kind FROM notifications WHERE user_id = :u AND ride_id = :r"),
            {"u": user_id, "r": ride_id},
        ).all()
    return sorted(r[0] for r in rows)


def test_a_payment_left_pending_is_read_again_from_stripe(client: TestClient) -> None:
    p = card_passenger(client)
    ride = card_ride(client, p)
    auth = held(ride["id"])
    # our row lost the answer (a crash after Stripe held the card)
    _sql(
        "UPDATE payments SET status = 'pending', updated_at = :t WHERE id = :p",
        t=utcnow() - timedelta(hours=1),
        p=auth["id"],
    )
    before = _repairs("payments", "reread")
    out = _run("payments.sweep_stuck")
    assert out["reread"] == 1
    assert payment_row(ride["id"])["status"] == "requires_capture"
    assert _repairs("payments", "reread") == before + 1
    assert _run("payments.sweep_stuck")["reread"] == 0  # repaired: left alone


def test_a_payment_stripe_never_saw_is_asked_again(client: TestClient) -> None:
    p = card_passenger(client)
    ride = card_ride(client, p)
    auth = held(ride["id"])
    # as if the authorize job had been lost before it reached Stripe
    _sql(
        "UPDATE payments SET status = 'pending', stripe_payment_intent_id = NULL, "
        "updated_at = :t WHERE id = :p",
        t=utcnow() - timedelta(hours=1),
        p=auth["id"],
    )
    assert _run("payments.sweep_stuck")["resent"] == 1
    again = until(
        lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_capture" and a
    )
    # the same idempotency key: Stripe answered with the same PaymentIntent
    assert again["stripe_payment_intent_id"] == auth["stripe_payment_intent_id"]


def test_a_hold_close_to_its_expiry_on_an_ended_ride_is_settled(client: TestClient) -> None:
    p = card_passenger(client)
    ride = card_ride(client, p)
    auth = held(ride["id"])
    assert auth["capture_before"] is not None  # from the charge, as Stripe gives it
    d = register(client, "driver")
    done = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    until(lambda: payment_row(ride["id"])["status"] == "succeeded")
    # a second ride whose hold lapses within the margin, and whose settle job was lost
    ride2 = card_ride(client, p)
    auth2 = held(ride2["id"])
    _sql("UPDATE rides SET status = 'cancelled', fee_amount = 0 WHERE id = :r", r=ride2["id"])
    _sql(
        "UPDATE payments SET capture_before = :t WHERE id = :p",
        t=utcnow() + timedelta(hours=2),
        p=auth2["id"],
    )
    out = _run("payments.sweep_holds", ended_for_s=3600, expiry_margin_s=86400)
    assert out["expiring_settled"] == 1
    assert out["settled"] == 0  # ended a moment ago: not yet stuck, but about to lapse
    until(lambda: payment_row(ride2["id"])["status"] == "canceled")
    assert done["status"] == "completed"


def test_a_stored_webhook_never_processed_is_processed(client: TestClient) -> None:
    p = card_passenger(client)
    ride = card_ride(client, p)
    auth = held(ride["id"])
    event_id = f"evt_{uuid.uuid4().hex[:20]}"
    payload = {
        "id": event_id,
        "type": "payment_intent.amount_capturable_updated",
        "created": int((utcnow() - timedelta(minutes=10)).timestamp()),
        "data": {"object": {"id": auth["stripe_payment_intent_id"], "object": "payment_intent"}},
    }
    _sql(
        "INSERT INTO webhook_events (id, type, payload, received_at) VALUES (:i, :t, :p, :at)",
        i=event_id,
        t=payload["type"],
        p=json.dumps(payload),
        at=utcnow() - timedelta(minutes=10),
    )
    assert _run("payments.sweep_webhooks") >= 1
    done = until(
        lambda: (
            (e := _one("SELECT * FROM webhook_events WHERE id = :i", i=event_id))
            and e["processed_at"]
            and e
        )
    )
    assert done["result"] == "payment requires_capture"
    assert _run("payments.sweep_webhooks") == 0


def test_stuck_rides_are_ended_by_the_rules_and_both_sides_told(client: TestClient) -> None:
    p1, p2 = register(client, "passenger"), register(client, "passenger")
    d1, d2 = register(client, "driver"), register(client, "driver")
    never_started = request_ride(client, p1)
    advance(client, never_started["id"], d1, "accept")
    silent = request_ride(client, p2)
    advance(client, silent["id"], d2, "accept", "arrive", "start")
    long_ago = utcnow() - timedelta(hours=5)
    _sql("UPDATE rides SET accepted_at = :t WHERE id = :r", t=long_ago, r=never_started["id"])
    _sql(
        "UPDATE rides SET started_at = :t WHERE id = :r",
        t=long_ago + timedelta(minutes=10),
        r=silent["id"],
    )
    p3 = register(client, "passenger")
    ok = request_ride(client, p3)  # a fresh one: left alone
    advance(client, ok["id"], register(client, "driver"), "accept")

    sent = _run("rides.sweep_stuck", unstarted_s=3600, silent_s=3 * 3600)
    assert sent == 2
    cancelled = until(
        lambda: (
            (r := client.get(f"/api/v1/rides/{never_started['id']}", headers=p1.headers).json())
            and r["status"] == "cancelled"
            and r
        )
    )
    row = _one("SELECT fee_amount, cancelled_by FROM rides WHERE id = :r", r=cancelled["id"])
    assert (row["fee_amount"], row["cancelled_by"]) == (0, "admin")  # the system; no fee
    completed = until(
        lambda: (
            (r := client.get(f"/api/v1/rides/{silent['id']}", headers=p2.headers).json())
            and r["status"] == "completed"
            and r
        )
    )
    # charged for the trip until the driver was last seen, never for the hours of silence
    assert completed["duration_s"] == 0
    assert completed["fare"]["amount"] > 0
    left = client.get(f"/api/v1/rides/{ok['id']}", headers=p3.headers)
    assert (left.status_code, left.json()["status"]) == (200, "accepted")
    until(lambda: _kinds(p1.id, never_started["id"]).count("ride_cancelled") == 1)
    until(lambda: _kinds(d1.id, never_started["id"]).count("ride_cancelled") == 1)
    until(lambda: "trip_completed" in _kinds(p2.id, silent["id"]))
    until(lambda: "trip_completed" in _kinds(d2.id, silent["id"]))
    assert _run("rides.sweep_stuck", unstarted_s=3600, silent_s=3 * 3600) == 0
