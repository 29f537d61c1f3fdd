"""Stripe webhooks: verified with the SDK, stored once, reconciled by a worker from Stripe's
current state, so replays and out-of-order deliveries leave one correct state."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import stripe
from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine
from infra.stripe_gateway import stripe_client
from tests.factories import advance, card_passenger, card_ride, held, payment_row, register
from tests.wait import until

SECRET = "whsec_suite_secret"


def _event(kind: str, obj: dict[str, Any], event_id: str | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2026-10-28.endive",
            "data": {"object": obj},
        }
    )


def _post(client: TestClient, payload: str, secret: str = SECRET, ts: int | None = None) -> Any:
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=ts)
    return client.post(
        "/api/v1/webhooks/stripe",
        content=payload,
        headers={"Stripe-Signature": header, "content-type": "application/json"},
    )


def _events() -> list[Any]:
    with get_engine().connect() as conn:
        return list(
            conn.execute(text("SELECT * FROM webhook_events ORDER BY received_at")).mappings().all()
        )


def test_signature_is_checked_and_an_empty_secret_verifies_nothing(
    client: TestClient, settings: Any, monkeypatch: Any
) -> None:
    payload = _event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})
    assert _post(client, payload, secret="whsec_wrong").status_code == 400
    old = _post(client, payload, ts=int(time.time()) - 3600)
    assert old.status_code == 400
    assert old.json()["code"] == "invalid_signature"
    future = _post(client, payload, ts=int(time.time()) + 3600)
    assert future.status_code == 400
    r = client.post(
        "/api/v1/webhooks/stripe", content=payload, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    monkeypatch.setattr(settings, "stripe_webhook_secret", "")
    r = _post(client, payload, secret="")
    assert r.status_code == 400
    assert r.json()["code"] == "webhooks_disabled"
    assert _events() == []


def test_replays_and_disorder_end_in_stripes_current_state(client: TestClient) -> None:
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    auth = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_capture" and a)
    pi = auth["stripe_payment_intent_id"]
    intent = stripe_client().v1.payment_intents.retrieve(pi).to_dict()
    # the "capturable" event, replayed three times: stored once, reconciled once
    payload = _event("payment_intent.amount_capturable_updated", intent, "evt_capturable_1")
    answers = [_post(client, payload).json() for _ in range(3)]
    assert answers == [
        {"received": True, "duplicate": False},
        {"received": True, "duplicate": True},
        {"received": True, "duplicate": True},
    ]
    until(lambda: (e := _events()) and e[0]["processed_at"] is not None)
    assert len(_events()) == 1
    assert _events()[0]["result"] == "payment requires_capture"

    done = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    until(lambda: (a := payment_row(ride["id"])) and a["status"] == "succeeded")
    captured = stripe_client().v1.payment_intents.retrieve(pi).to_dict()
    # out of order: "succeeded" first, then a stale "capturable" snapshot arrives late
    _post(client, _event("payment_intent.succeeded", captured))
    _post(client, _event("payment_intent.amount_capturable_updated", intent))
    until(lambda: len(_events()) == 3 and all(e["processed_at"] for e in _events()))
    final = payment_row(ride["id"])
    assert final["status"] == "succeeded"  # the stale snapshot changed nothing
    assert final["amount_received"] == done["fare"]["amount"]
    with get_engine().connect() as conn:
        received = conn.execute(
            text(
                "SELECT count(*) FROM journal_entries WHERE kind = 'card_received' AND ride_id = :r"
            ),
            {"r": ride["id"]},
        ).scalar_one()
        total = conn.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger_lines")).scalar_one()
    assert received == 1
    assert total == 0


def test_unknown_events_are_stored_and_ignored(client: TestClient) -> None:
    r = _post(client, _event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id"}))
    assert r.status_code == 200
    until(lambda: (e := _events()) and e[0]["result"] == "ignored")


def test_a_refund_that_fails_later_is_reflected_and_reversed(
    client: TestClient, settings: Any
) -> None:
    from infra.db import session_scope
    from infra.users import create_user
    from tests.factories import PASSWORD, login

    with session_scope() as session:
        create_user(session, email="ops-wh@ops.io", password=PASSWORD, name="Ops", role="admin")
    admin = login(client, "ops-wh@ops.io", "", "admin")
    p = card_passenger(client, "pm_card_refundFail")  # refunds fail a moment later
    d = register(client, "driver")
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    paid = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "succeeded" and a)
    r = client.post(
        f"/api/v1/payments/{paid['id']}/refunds", json={"reason": "sorry"}, headers=admin.headers
    )
    assert r.status_code == 201
    with get_engine().connect() as conn:
        refund_id = until(
            lambda: conn.execute(
                text("SELECT stripe_refund_id FROM refunds WHERE status != 'pending'")
            ).scalar()
        )
    time.sleep(1.2)  # the bank bounces it
    stripe_refund = stripe_client().v1.refunds.retrieve(refund_id)
    assert stripe_refund.status == "failed"
    _post(client, _event("refund.updated", stripe_refund.to_dict()))

    def refund_status() -> Any:
        with get_engine().connect() as conn:
            return conn.execute(text("SELECT status FROM refunds")).scalar_one()

    until(lambda: refund_status() == "failed")
    assert payment_row(ride["id"])["amount_refunded"] == 0
    with get_engine().connect() as conn:
        total = conn.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger_lines")).scalar_one()
        refunds_balance = conn.execute(
            text("SELECT coalesce(sum(amount), 0) FROM ledger_lines WHERE account = 'refunds'")
        ).scalar_one()
    assert total == 0
    assert refunds_balance == 0
