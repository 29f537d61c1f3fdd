"""Card rides against the offline Stripe stand-in with a real worker: authorized at
request, captured once at the final fare (below or above the hold), released or charged
a fee on cancellation, and a declined card stopping the ride."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import text

from domain.fares import hold_amount
from domain.money import Money
from infra.db import get_engine, utcnow
from infra.live.keys import Keys, user_stream
from infra.redis import get_sync_redis
from infra.stripe_gateway import stripe_client
from tests.factories import (
    DROPOFF,
    PICKUP,
    advance,
    card_passenger,
    card_ride,
    held,
    ledger_sum,
    pay_on_device,
    payment_row,
    register,
)
from tests.wait import until


def _stripe_calls(settings: Any, path: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{settings.stripe_api_base}/_config/requests", params={"path_prefix": path})
    return [x for x in r.json() if x["method"] == "POST"]


def test_authorized_at_request_and_captured_once_at_a_lower_fare(
    client: TestClient, settings: Any
) -> None:
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    hold = hold_amount(Money(ride["estimate"]["amount"], "usd")).amount
    auth = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_capture" and a)
    assert auth["amount"] == hold
    intent = stripe_client().v1.payment_intents.retrieve(auth["stripe_payment_intent_id"])
    assert (intent.status, intent.amount, intent.capture_method) == (
        "requires_capture",
        hold,
        "manual",
    )
    assert intent.metadata["ride_id"] == ride["id"]
    done = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    fare = done["fare"]["amount"]
    assert fare < hold  # a short, fast trip
    captured = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "succeeded" and a)
    assert captured["amount_received"] == fare
    assert captured["risk_level"] == "normal"  # Stripe's risk outcome, kept with the charge
    intent = stripe_client().v1.payment_intents.retrieve(auth["stripe_payment_intent_id"])
    assert (intent.status, intent.amount_received) == ("succeeded", fare)
    captures = [
        c
        for c in _stripe_calls(settings, "/v1/payment_intents")
        if c["path"].endswith("/capture") and auth["stripe_payment_intent_id"] in c["path"]
    ]
    assert len({c["idempotency_key"] for c in captures}) == 1
    assert captures[0]["idempotency_key"] == f"ride-{ride['id']}-capture"
    until(lambda: ledger_sum() == 0 and _count_entries(ride["id"]) == 2)


def _count_entries(ride_id: str) -> int:
    with get_engine().connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM journal_entries WHERE ride_id = :r"), {"r": ride_id}
            ).scalar_one()
        )


def test_a_fare_above_the_hold_captures_the_hold_and_charges_the_rest(
    client: TestClient,
) -> None:
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], d, "accept", "arrive", "start")
    with get_engine().begin() as conn:  # a two-hour crawl through traffic
        conn.execute(
            text("UPDATE rides SET started_at = :t WHERE id = :r"),
            {"t": utcnow() - timedelta(hours=2), "r": ride["id"]},
        )
    done = advance(client, ride["id"], d, "complete")
    fare = done["fare"]["amount"]
    auth = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "succeeded" and a)
    extra = until(
        lambda: (e := payment_row(ride["id"], "extra_charge")) and e["status"] == "succeeded" and e
    )
    assert auth["amount_received"] == auth["amount"]
    assert auth["amount_received"] + extra["amount_received"] == fare
    until(lambda: ledger_sum() == 0 and _count_entries(ride["id"]) == 3)


def test_cancelled_rides_release_the_hold_or_capture_the_fee(
    client: TestClient, settings: Any
) -> None:
    p = card_passenger(client)
    free = card_ride(client, p)
    auth = until(lambda: (a := payment_row(free["id"])) and a["status"] == "requires_capture" and a)
    client.post(f"/api/v1/rides/{free['id']}/cancel", headers=p.headers)
    released = until(lambda: (a := payment_row(free["id"])) and a["status"] == "canceled" and a)
    assert released["amount_received"] == 0
    assert (
        stripe_client().v1.payment_intents.retrieve(auth["stripe_payment_intent_id"]).status
        == "canceled"
    )

    d = register(client, "driver")
    late = card_ride(client, p)
    until(lambda: (a := payment_row(late["id"])) and a["status"] == "requires_capture")
    advance(client, late["id"], d, "accept")
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET accepted_at = :t WHERE id = :r"),
            {"t": utcnow() - timedelta(minutes=10), "r": late["id"]},
        )
    client.post(f"/api/v1/rides/{late['id']}/cancel", headers=p.headers)
    fee = until(lambda: (a := payment_row(late["id"])) and a["status"] == "succeeded" and a)
    assert fee["amount_received"] == settings.fare.cancellation_fee


def test_a_declined_card_stops_the_ride(
    client: TestClient, settings: Any, monkeypatch: Any
) -> None:
    # attaches fine, declines when charged (Stripe's test card for exactly that)
    p = card_passenger(client, "pm_card_chargeCustomerFail")
    ride = card_ride(client, p)
    failed = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "failed" and a)
    assert failed["failure_code"]
    r = until(
        lambda: (
            (x := client.get(f"/api/v1/rides/{ride['id']}", headers=p.headers).json())["status"]
            == "cancelled"
            and x
        )
    )
    assert "authorization" in r["cancel_reason"]
    # the worker's cancellation went through the same follow-ups as anyone's: the ride's
    # status published once, the ledger and settle jobs queued and done
    with get_engine().connect() as conn:
        tasks = conn.execute(
            text(
                "SELECT task FROM outbox WHERE task_kwargs->>'ride_id' = :r "
                "AND (task_kwargs->>'status' IS NULL OR task_kwargs->>'status' = 'cancelled')"
            ),
            {"r": ride["id"]},
        ).scalars()
        assert {"rides.publish", "ledger.post_ride", "payments.settle_ride"} <= set(tasks)
    events = get_sync_redis().xrange(Keys.of(Keys.RIDE_EVENTS, ride["id"]))
    statuses = [json.loads(f["d"])["status"] for _id, f in events if f["e"] == "status"]
    assert statuses == ["requested", "cancelled"]
    # fraud basics: failed card payments per hour are counted; past the limit, cash only
    monkeypatch.setattr(settings, "fraud", replace(settings.fraud, failed_payments_per_hour=1))
    again = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "card"},
        headers=p.headers,
    )
    assert again.status_code == 429
    assert again.json()["code"] == "too_many_failed_payments"
    cash = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert cash.status_code == 201


def test_the_rides_driver_sees_its_payments_without_the_riders_card_details(
    client: TestClient,
) -> None:
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], d, "accept")
    url, q = "/api/v1/payments", {"ride_id": ride["id"]}
    mine = client.get(url, params=q, headers=p.headers).json()["items"]
    theirs = client.get(url, params=q, headers=d.headers).json()["items"]
    assert [x["id"] for x in theirs] == [x["id"] for x in mine]
    assert {"risk_level", "failure_code"} <= set(mine[0])
    assert not {"risk_level", "failure_code"} & set(theirs[0])
    assert theirs[0]["amount"] == mine[0]["amount"]


def test_partial_and_full_refunds_never_more_than_captured(client: TestClient) -> None:
    from infra.db import session_scope
    from infra.users import create_user
    from tests.factories import PASSWORD, login

    with session_scope() as session:
        create_user(session, email="refunds@ops.io", password=PASSWORD, name="Ops", role="admin")
    admin = login(client, "refunds@ops.io", "", "admin")
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    held(ride["id"])
    fare = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")["fare"]
    paid = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "succeeded" and a)
    assert paid["amount_received"] == fare["amount"]
    url = f"/api/v1/payments/{paid['id']}/refunds"
    assert (
        client.post(url, json={"amount": 300, "reason": "x"}, headers=p.headers).status_code == 403
    )
    r = client.post(url, json={"amount": 300, "reason": "route detour"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    too_much = client.post(
        url, json={"amount": fare["amount"], "reason": "x"}, headers=admin.headers
    )
    assert too_much.status_code == 409
    assert too_much.json()["code"] == "refund_exceeds_captured"
    rest = client.post(url, json={"reason": "requested_by_customer"}, headers=admin.headers)
    assert rest.json()["amount"] == fare["amount"] - 300
    assert (
        client.post(url, json={"amount": 1, "reason": "x"}, headers=admin.headers).status_code
        == 409
    )

    def refunded() -> Any:
        items = client.get(
            "/api/v1/payments", params={"ride_id": ride["id"]}, headers=p.headers
        ).json()["items"]
        auth = next(i for i in items if i["kind"] == "authorization")
        return auth["amount_refunded"] == fare["amount"] and auth

    until(refunded)
    intent = stripe_client().v1.payment_intents.retrieve(
        paid["stripe_payment_intent_id"], params={"expand": ["latest_charge"]}
    )
    assert intent.latest_charge.amount_refunded == fare["amount"]  # type: ignore[union-attr]
    until(lambda: ledger_sum() == 0 and _count_entries(ride["id"]) == 4)
    stranger = register(client, "passenger")
    assert (
        client.get(
            "/api/v1/payments", params={"ride_id": ride["id"]}, headers=stranger.headers
        ).status_code
        == 404
    )


def test_an_unpaid_rest_is_an_outstanding_balance_that_blocks_the_next_ride(
    client: TestClient,
) -> None:
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], d, "accept", "arrive", "start")
    # mid-ride the passenger removes the card, and the trip runs long
    card = client.get("/api/v1/payments/methods", headers=p.headers).json()["items"][0]
    assert (
        client.delete(f"/api/v1/payments/methods/{card['id']}", headers=p.headers).status_code
        == 204
    )
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET started_at = :t WHERE id = :r"),
            {"t": utcnow() - timedelta(hours=2), "r": ride["id"]},
        )
    fare = advance(client, ride["id"], d, "complete")["fare"]["amount"]
    extra = until(
        lambda: (e := payment_row(ride["id"], "extra_charge")) and e["status"] == "failed" and e
    )
    auth = payment_row(ride["id"])
    assert auth["amount_received"] + extra["amount"] == fare
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert r.status_code == 409
    assert r.json()["code"] == "outstanding_balance"
    assert str(extra["amount"]) in r.json()["detail"]


def test_a_card_needing_3ds_ends_in_a_balance_that_the_device_settles(
    client: TestClient, settings: Any
) -> None:
    base = settings.stripe_api_base
    p = register(client, "passenger")
    si = client.post("/api/v1/payments/setup-intent", headers=p.headers).json()
    setup = stripe_client().v1.setup_intents.confirm(
        si["setup_intent_id"], params={"payment_method": "pm_card_authenticationRequired"}
    )
    assert setup.status == "requires_action"
    httpx.post(
        f"{base}/_config/intents/{si['setup_intent_id']}/authenticate", json={"success": True}
    ).raise_for_status()  # the rider passes 3-D Secure
    d = register(client, "driver")
    phone = f"3ds-phone-{p.id}"
    client.post("/api/v1/devices", json={"token": phone, "platform": "ios"}, headers=p.headers)
    ride = card_ride(client, p)
    # off-session the bank wants the rider again: no hold, but the ride goes on
    until(lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_action")
    from infra.redis import get_sync_redis

    told = until(lambda: get_sync_redis().xrange(user_stream(p.id)))
    assert told[0][1]["e"] == "payment_requires_action"
    # and pushed to the device, high priority, opening the payment screen
    pushes = until(
        lambda: [
            r["message"]
            for r in httpx.get(f"{settings.fcm_endpoint}/_requests").json()
            if r["message"]["token"] == phone
        ]
    )
    assert pushes[0]["data"] == {
        "type": "payment_requires_action",
        "ride_id": ride["id"],
        "screen": "payment",
        "notification_id": pushes[0]["data"]["notification_id"],
    }
    assert pushes[0]["apns"]["headers"]["apns-priority"] == "10"
    done = advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    extra = until(
        lambda: (
            (e := payment_row(ride["id"], "extra_charge"))
            and e["status"] == "requires_action"
            and e
        )
    )
    assert extra["amount"] == done["fare"]["amount"]
    blocked = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert blocked.json()["code"] == "outstanding_balance"

    # the app: the ride's PaymentIntent, authenticated on the device, then confirmed here
    intent = client.post(
        "/api/v1/payments/intent", json={"ride_id": ride["id"]}, headers=p.headers
    ).json()
    assert intent["payment_id"] == str(extra["id"])
    assert intent["client_secret"]
    pay_on_device(base, intent["id"], extra["payment_method_id"])
    r = client.post(f"/api/v1/payments/{extra['id']}/confirm", headers=p.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "succeeded"
    assert r.json()["amount_received"] == done["fare"]["amount"]
    again = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert again.status_code == 201
    until(lambda: ledger_sum() == 0)


def test_a_card_declined_at_the_end_leaves_an_outstanding_balance(
    client: TestClient, settings: Any
) -> None:
    p = card_passenger(client)
    d = register(client, "driver")
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], d, "accept", "arrive", "start")
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET started_at = :t WHERE id = :r"),
            {"t": utcnow() - timedelta(hours=2), "r": ride["id"]},
        )
    # the bank refuses both the capture of the hold and the charge that replaces it
    httpx.post(
        f"{settings.stripe_api_base}/_config/faults",
        json={
            "path_prefix": "/v1/payment_intents",
            "method": "POST",
            "status": 402,
            "count": 2,
            "after": False,
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "do_not_honor",
                "message": "Your card was declined.",
            },
        },
    ).raise_for_status()
    advance(client, ride["id"], d, "complete")
    extra = until(
        lambda: (e := payment_row(ride["id"], "extra_charge")) and e["status"] == "failed" and e
    )
    assert extra["failure_code"] == "do_not_honor"
    assert payment_row(ride["id"])["status"] == "failed"  # the hold was never captured
    fare = client.get(f"/api/v1/rides/{ride['id']}", headers=p.headers).json()["fare"]
    assert extra["amount"] == fare["amount"]  # all of it is owed
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert r.json()["code"] == "outstanding_balance"


def test_an_ended_ride_whose_hold_was_never_settled_is_settled_by_the_sweep(
    client: TestClient,
) -> None:
    from infra.queue import celery_app

    p = card_passenger(client)
    ride = card_ride(client, p)
    auth = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "requires_capture" and a)
    # the ride ended, and its settle job was lost
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET status = 'cancelled', fee_amount = 0 WHERE id = :r"),
            {"r": ride["id"]},
        )
        conn.execute(
            text("UPDATE payments SET updated_at = :t WHERE id = :p"),
            {"t": utcnow() - timedelta(hours=1), "p": auth["id"]},
        )
    assert celery_app.send_task("payments.sweep_holds").get(timeout=15)["settled"] == 1
    released = until(lambda: (a := payment_row(ride["id"])) and a["status"] == "canceled" and a)
    assert released["amount_received"] == 0
    assert celery_app.send_task("payments.sweep_holds").get(timeout=15) == {
        "settled": 0,
        "expiring_settled": 0,
        "expiring_open": 0,
    }
