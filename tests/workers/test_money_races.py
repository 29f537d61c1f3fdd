"""Money races against PostgreSQL, a real worker and the Stripe stand-in: refunds racing
the capture they depend on and each other, and a webhook racing the worker that made
the call. Whatever the order, nothing is refunded beyond what was captured, Stripe and
our rows agree, and the ledger balances."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from fastapi.testclient import TestClient

from infra.db import session_scope
from infra.stripe_gateway import stripe_client
from infra.users import create_user
from tests.factories import (
    PASSWORD,
    advance,
    card_passenger,
    card_ride,
    held,
    ledger_sum,
    login,
    payment_row,
    register,
)
from tests.wait import until


def _race(calls: list[Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def go(call: Any) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(go, calls))


def test_refunds_racing_the_capture_and_each_other_never_exceed_it(client: TestClient) -> None:
    with session_scope() as session:
        create_user(session, email="race-ops@ops.io", password=PASSWORD, name="O", role="admin")
    admin = login(client, "race-ops@ops.io", "", "admin")
    for _round in range(3):
        p, d = card_passenger(client), register(client, "driver")
        ride = card_ride(client, p)
        auth = held(ride["id"])
        fare = advance(client, ride["id"], d, "accept", "arrive", "start")
        url = f"/api/v1/payments/{auth['id']}/refunds"
        full = {"amount": ride["estimate"]["amount"], "reason": "requested_by_customer"}
        # the completion (whose capture a worker makes) and four full refunds at once
        complete = partial(client.post, f"/api/v1/rides/{ride['id']}/complete", headers=d.headers)
        refund = partial(client.post, url, json=full, headers=admin.headers)
        answers = _race([complete, refund, refund, refund, refund])
        assert answers[0].status_code == 200
        fare = answers[0].json()["fare"]["amount"]
        accepted = [r.json()["amount"] for r in answers[1:] if r.status_code == 201]
        assert all(r.status_code in (201, 409) for r in answers[1:]), [r.text for r in answers[1:]]
        paid = until(
            lambda r=ride["id"]: (a := payment_row(r)) and a["status"] == "succeeded" and a
        )
        assert paid["amount_received"] == fare
        assert sum(accepted) <= paid["amount_received"]  # never beyond what was captured
        # Stripe agrees with our rows once the refunds are made
        total = sum(accepted)
        until(lambda r=ride["id"], n=total: payment_row(r)["amount_refunded"] == n)
        intent = stripe_client().v1.payment_intents.retrieve(
            paid["stripe_payment_intent_id"], params={"expand": ["latest_charge"]}
        )
        charge: Any = intent.latest_charge
        assert charge.amount_captured == fare
        assert charge.amount_refunded == sum(accepted) <= charge.amount_captured
    until(lambda: ledger_sum() == 0)


def test_a_webhook_racing_the_worker_that_made_the_call_changes_nothing(
    client: TestClient, settings: Any
) -> None:
    """Stripe has held the card, but its answer to our worker is late: Stripe's event
    reaches us first. The event waits for our row (Retryable), then reads Stripe's state;
    the payment ends held once, with one PaymentIntent."""
    import httpx

    from tests.workers.test_webhooks import _event, _events, _post

    p = card_passenger(client)
    httpx.post(
        f"{settings.stripe_api_base}/_config/faults",
        json={"path_prefix": "/v1/payment_intents", "method": "POST", "delay_s": 3.0, "count": 1},
    ).raise_for_status()
    ride = card_ride(client, p)

    def made_at_stripe() -> Any:
        found = stripe_client().v1.payment_intents.list(params={"limit": 100}).data
        return next(
            (
                i
                for i in found
                if (i.metadata.to_dict() if i.metadata else {}).get("ride_id") == ride["id"]
            ),
            None,
        )

    intent = until(made_at_stripe, timeout=10)
    assert payment_row(ride["id"])["stripe_payment_intent_id"] is None  # our worker still waits
    obj = {"id": intent.id, "object": "payment_intent", "metadata": intent.metadata.to_dict()}
    assert _post(client, _event("payment_intent.amount_capturable_updated", obj)).status_code == 200
    held = until(
        lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_capture" and a,
        timeout=60,  # the worker's late answer, then the event's retry with backoff
    )
    assert held["stripe_payment_intent_id"] == intent.id
    done = until(
        lambda: [e for e in _events() if e["processed_at"] is not None],
        timeout=60,
    )
    assert done[-1]["result"] == "payment requires_capture"
    found = stripe_client().v1.payment_intents.list(params={"limit": 100}).data
    assert [
        i.id
        for i in found
        if (i.metadata.to_dict() if i.metadata else {}).get("ride_id") == ride["id"]
    ] == [intent.id]
