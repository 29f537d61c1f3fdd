"""A tour of every operation, as apps call them: each answer is checked against the
schema the OpenAPI document gives it, each stream's events against their models, and the
first answer of each operation is the document's example (`api/examples.json`).

    RIDEHAIL_WRITE_EXAMPLES=1 .venv/bin/pytest tests/workers/test_examples.py

writes the examples from this run; without it the committed examples are checked to
still validate, and to cover every operation."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import stripe
from fastapi.testclient import TestClient
from sqlalchemy import text

from api.events import EVENT_MODELS, STREAMS
from api.routers.streams import _frame
from infra.db import get_engine, session_scope, utcnow
from infra.events import Event
from infra.live.keys import ADMIN_STREAM, Keys
from infra.stripe_gateway import stripe_client
from infra.users import create_user
from tests.factories import (
    DROPOFF,
    PASSWORD,
    PICKUP,
    Account,
    grant_offer,
    held,
    login,
    pay_on_device,
    payment_row,
    register,
    request_ride,
)
from tests.wait import until

EXAMPLES = Path(__file__).resolve().parents[2] / "api" / "examples.json"
SECRET = "whsec_suite_secret"


@dataclass
class Tour:
    client: TestClient
    doc: dict[str, Any]
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    start: float = field(default_factory=time.time)

    def at(self, step: int) -> float:
        """The time of the tour's `step`-th fix: all in the past, in order, 8 s apart, so
        no fix is ever out of order or faster than a car, however fast the tour runs."""
        return self.start - 60 + 8 * step

    def op(self, op_id: str) -> tuple[str, str, dict[str, Any]]:
        for path, methods in self.doc["paths"].items():
            for method, op in methods.items():
                if op["operationId"] == op_id:
                    return method.upper(), path, op
        raise AssertionError(f"no operation {op_id}")

    def call(
        self,
        op_id: str,
        expect: int,
        headers: dict[str, str] | None = None,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, Any] | None = None,
        json_body: Any = None,
        form: dict[str, Any] | None = None,
        raw: str | None = None,
    ) -> httpx.Response:
        method, template, op = self.op(op_id)
        url = template.format(**(path or {}))
        sent: dict[str, Any] = {}
        if json_body is not None:
            sent = {"json": json_body}
        elif form is not None:
            sent = {"data": form}
        elif raw is not None:
            sent = {"content": raw}
        r = self.client.request(method, url, params=query, headers=headers, **sent)
        assert r.status_code == expect, (op_id, r.status_code, r.text)
        answer = op["responses"][str(expect)]
        if "$ref" in answer:
            answer = _resolve(self.doc, answer["$ref"])
        content = answer.get("content", {})
        body: Any = None
        if "application/json" in content:
            body = r.json()
            validate(self.doc, content["application/json"]["schema"], body, op_id)
        elif "text/event-stream" in content:
            body = r.text
        if op_id not in self.seen:
            request = json_body if json_body is not None else form
            if raw is not None:
                request = json.loads(raw)
            self.seen[op_id] = {
                "request": request,
                "form": form is not None,
                "query": dict(query) if query else None,
                "status": str(expect),
                "response": body,
            }
        return r


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def validate(doc: dict[str, Any], schema: dict[str, Any], body: Any, what: str) -> None:
    root = {**schema, "components": doc["components"]}
    errors = list(jsonschema.Draft202012Validator(root).iter_errors(body))
    assert not errors, (what, [f"{list(e.path)}: {e.message}" for e in errors[:5]])


def _events(stream: str, after: str = "-") -> list[Event]:
    from infra.redis import get_sync_redis

    rows = get_sync_redis().xrange(stream, min=after)
    return [Event(i, f["e"], f["d"]) for i, f in rows]


def _check_frames(tour: Tour, operation_id: str, events: list[Event]) -> str:
    """Each event's data against its model, and the stream's text as the server frames it."""
    stream = next(s for s in STREAMS if s.operation_id == operation_id)
    assert events, operation_id
    for event in events:
        model = stream.events[event.event]
        model.model_validate_json(event.data)
        schema = {"$ref": f"#/components/schemas/{model.__name__}"}
        validate(tour.doc, schema, json.loads(event.data), f"{operation_id} {event.event}")
    return "retry: 2000\n\n" + "".join(_frame(e) for e in events)


def _admin(client: TestClient) -> Account:
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    with session_scope() as session:
        user = create_user(session, email=email, password=PASSWORD, name="Ops", role="admin")
        user_id = str(user.id)
    return login(client, email, user_id, "admin")


def _ping(tour: Tour, driver: Account, lat: float, lng: float, n: int) -> None:
    tour.call(
        "report_location",
        202,
        driver.headers,
        json_body={
            "lat": lat,
            "lng": lng,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tour.at(n)))
            if n == 0
            else f"{tour.at(n):.3f}",
            "speed": 8.5,
            "heading": 135,
            "accuracy": 6,
            "uuid": f"fix-{driver.id[:8]}-{n}",
        },
    )


def test_every_operation_answers_as_its_schema_says(client: TestClient, settings: Any) -> None:
    from api.main import app

    doc = app.openapi()
    tour = Tour(client, doc)
    tour.call("check_health", 200)
    tour.call("check_readiness", 200)

    # accounts
    email = f"rider-{uuid.uuid4().hex[:8]}@example.com"
    made = tour.call(
        "register_user",
        201,
        json_body={"email": email, "password": PASSWORD, "name": "Ada Rider", "role": "passenger"},
    ).json()
    tokens = tour.call("create_token", 200, form={"username": email, "password": PASSWORD}).json()
    tokens = tour.call(
        "refresh_token", 200, json_body={"refresh_token": tokens["refresh_token"]}
    ).json()
    p = Account(made["id"], email, "passenger", tokens["access_token"], tokens["refresh_token"])
    tour.call("get_me", 200, p.headers)
    d = register(client, "driver")
    admin = _admin(client)

    # a card, saved on the device through Stripe
    si = tour.call("create_setup_intent", 200, p.headers).json()
    stripe_client().v1.setup_intents.confirm(
        si["setup_intent_id"], params={"payment_method": "pm_card_visa"}
    )
    cards = tour.call("list_payment_methods", 200, p.headers).json()["items"]
    tour.call("set_default_payment_method", 200, p.headers, path={"pm_id": cards[0]["id"]})

    # the driver online, near the pickup, also through a tracking app (OsmAnd)
    tour.call("set_driver_status", 200, d.headers, json_body={"status": "online"})
    _ping(tour, d, PICKUP["lat"] + 0.004, PICKUP["lng"] + 0.004, 0)
    key = tour.call("create_device_key", 200, d.headers).json()["device_key"]
    tour.call(
        "report_osmand_location",
        200,
        query={"id": key, "lat": PICKUP["lat"] + 0.0038, "lon": PICKUP["lng"] + 0.0038,
               "timestamp": str(int(tour.at(1))), "speed": 12, "bearing": 140, "accuracy": 8},
    )  # fmt: skip
    tour.call(
        "post_osmand_location",
        200,
        form={"id": key, "lat": PICKUP["lat"] + 0.0036, "lon": PICKUP["lng"] + 0.0036,
              "timestamp": str(int(tour.at(2))), "speed": 11},
    )  # fmt: skip
    tour.call(
        "list_nearby_drivers",
        200,
        p.headers,
        query={"lat": PICKUP["lat"], "lng": PICKUP["lng"], "radius_m": 2000},
    )

    # a card ride, from the request to its payment
    tour.call("estimate_ride", 200, p.headers, json_body={"pickup": PICKUP, "dropoff": DROPOFF})
    ride = tour.call(
        "request_ride",
        201,
        {**p.headers, "Idempotency-Key": f"ride-{uuid.uuid4()}"},
        json_body={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "card"},
    ).json()
    rid = {"ride_id": ride["id"]}
    held(ride["id"])
    tour.call("get_ride", 200, p.headers, path=rid)
    tour.call("list_rides", 200, p.headers, query={"limit": 5})
    grant_offer(ride["id"], d.id)
    tour.call("list_my_offers", 200, d.headers)
    tour.call("create_driver_stream_token", 200, d.headers)
    tour.call("accept_offer", 200, d.headers, path=rid)
    _ping(tour, d, PICKUP["lat"] + 0.002, PICKUP["lng"] + 0.002, 3)
    tour.call("get_driver_location", 200, p.headers, path=rid)
    tour.call("create_ride_stream_token", 200, p.headers, path=rid)
    tour.call("mark_arrived", 200, d.headers, path=rid)
    tour.call("start_trip", 200, d.headers, path=rid)
    tour.call(
        "report_locations",
        202,
        d.headers,
        json_body={
            "pings": [
                {"lat": 52.5215 - i * 0.0005, "lng": 13.4065 + i * 0.0005,
                 "recorded_at": f"{tour.at(4 + i):.3f}", "speed": 11.0, "uuid": f"b-{i}-{d.id[:8]}"}
                for i in range(3)
            ]
        },
    )  # fmt: skip
    tour.call("complete_ride", 200, d.headers, path=rid)
    with client.stream("GET", f"/api/v1/rides/{ride['id']}/events", headers=p.headers) as r:
        assert r.status_code == 200
        streamed = "".join(r.iter_text())
    tour.seen["stream_ride_events"] = {
        "request": None,
        "query": None,
        "status": "200",
        "response": _check_frames(
            tour, "stream_ride_events", _events(Keys.of(Keys.RIDE_EVENTS, ride["id"]))
        ),
    }
    assert "event: status" in streamed
    assert '"status":"completed"' in streamed.replace(" ", "")
    until(lambda: (c := payment_row(ride["id"])) and c["status"] == "succeeded")
    paid = tour.call("list_payments", 200, p.headers, query={"ride_id": ride["id"]}).json()
    captured = paid["items"][0]
    tour.call(
        "create_refund",
        201,
        admin.headers,
        path={"payment_id": captured["id"]},
        json_body={"amount": 100, "reason": "the route took a detour"},
    )

    # both sides rate
    tour.call("list_rating_tags", 200, p.headers)
    tour.call(
        "rate_ride",
        201,
        p.headers,
        json_body={"ride_id": ride["id"], "stars": 5, "comment": "Smooth ride", "tags": []},
    )
    until(
        lambda: client.get(f"/api/v1/users/{d.id}/rating", headers=p.headers).json()["count"] == 1
    )
    tour.call("get_rating_summary", 200, p.headers, path={"user_id": d.id})
    tour.call("list_ratings_received", 200, p.headers, path={"user_id": d.id})
    tour.call("list_rating_alerts", 200, admin.headers)

    # a card needing the rider (3-D Secure): the device settles the balance
    q = register(client, "passenger")
    setup = client.post("/api/v1/payments/setup-intent", headers=q.headers).json()
    stripe_client().v1.setup_intents.confirm(
        setup["setup_intent_id"], params={"payment_method": "pm_card_authenticationRequired"}
    )
    base = settings.stripe_api_base
    httpx.post(
        f"{base}/_config/intents/{setup['setup_intent_id']}/authenticate", json={"success": True}
    ).raise_for_status()
    second = request_ride(client, q, "card")
    until(lambda: (a := payment_row(second["id"])) and a["status"] == "requires_action")
    grant_offer(second["id"], d.id)
    for action in ("accept", "arrive", "start", "complete"):
        assert client.post(f"/api/v1/rides/{second['id']}/{action}", headers=d.headers).is_success
    extra = until(
        lambda: (
            (e := payment_row(second["id"], "extra_charge"))
            and e["status"] == "requires_action"
            and e
        )
    )
    intent = tour.call(
        "create_ride_intent", 200, q.headers, json_body={"ride_id": second["id"]}
    ).json()
    pay_on_device(base, intent["id"], extra["payment_method_id"])
    tour.call("confirm_payment", 200, q.headers, path={"payment_id": str(extra["id"])})

    # a cash ride: the cash the driver took
    c = register(client, "passenger")
    cash = request_ride(client, c, "cash")
    grant_offer(cash["id"], d.id)
    for action in ("accept", "arrive", "start"):
        assert client.post(f"/api/v1/rides/{cash['id']}/{action}", headers=d.headers).is_success
    fare = client.post(f"/api/v1/rides/{cash['id']}/complete", headers=d.headers).json()["fare"]
    tour.call(
        "record_cash_collected",
        201,
        d.headers,
        path={"ride_id": cash["id"]},
        json_body={"amount": fare["amount"]},
    )
    until(lambda: _entries(cash["id"]) >= 2, timeout=30)
    with get_engine().begin() as conn:  # the day's lines on a fixed past day, settled
        conn.execute(
            text("UPDATE journal_entries SET created_at = :at WHERE ride_id = :ride"),
            {"at": "2026-03-10 12:00:00+00", "ride": cash["id"]},
        )
    from infra.queue import celery_app

    celery_app.send_task("payments.settle_day", kwargs={"period": "2026-03-10"}).get(timeout=15)
    tour.call("get_earnings", 200, d.headers)
    tour.call("list_settlements", 200, d.headers)
    tour.call("create_payout_account_link", 200, d.headers)

    # a ride declined, one cancelled, one whose passenger never came
    e = register(client, "passenger")
    other = register(client, "driver")
    declined = request_ride(client, e, "cash")
    grant_offer(declined["id"], other.id)
    tour.call("get_ride", 200, other.headers, path={"ride_id": declined["id"]})  # the offer
    tour.call("decline_offer", 200, other.headers, path={"ride_id": declined["id"]})
    tour.call(
        "cancel_ride",
        200,
        e.headers,
        path={"ride_id": declined["id"]},
        json_body={"reason": "found another way"},
    )
    f = register(client, "passenger")
    waited = request_ride(client, f, "cash")
    grant_offer(waited["id"], other.id)
    for action in ("accept", "arrive"):
        assert client.post(
            f"/api/v1/rides/{waited['id']}/{action}", headers=other.headers
        ).is_success
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET arrived_at = :at WHERE id = :id"),
            {
                "at": utcnow() - timedelta(seconds=settings.fare.no_show_wait_s + 1),
                "id": waited["id"],
            },
        )
    tour.call("report_no_show", 200, other.headers, path={"ride_id": waited["id"]})

    # pushes and promotions
    token = f"fcm-{uuid.uuid4().hex}"
    tour.call("register_device", 201, p.headers, json_body={"token": token, "platform": "android"})
    tour.call("list_notifications", 200, p.headers, query={"limit": 3})
    tour.call("set_notification_preferences", 200, p.headers, json_body={"promotions": True})
    tour.call("get_notification_preferences", 200, p.headers)
    sent = tour.call(
        "create_broadcast",
        202,
        admin.headers,
        json_body={"title": "Weekend offer", "body": "20% off rides to the airport."},
    ).json()
    tour.call("get_broadcast", 200, admin.headers, path={"broadcast_id": sent["id"]})
    tour.call("unregister_device", 204, p.headers, path={"token": token})

    # operations
    tour.call("get_overview", 200, admin.headers, query={"since_h": 24})
    tour.call("get_dispatch_stats", 200, admin.headers, path={"driver_id": d.id})
    tour.call("create_admin_stream_token", 200, admin.headers)
    tour.seen["stream_admin_events"] = {
        "request": None,
        "query": None,
        "status": "200",
        "response": _check_frames(tour, "stream_admin_events", _events(ADMIN_STREAM)[-4:]),
    }
    tour.seen["stream_driver_events"] = {
        "request": None,
        "query": None,
        "status": "200",
        "response": _check_frames(
            tour, "stream_driver_events", _events(Keys.of(Keys.DRIVER_EVENTS, other.id))
        ),
    }

    # Stripe tells us about a payment
    payload = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2026-10-28.endive",
            "data": {"object": {"id": intent["id"], "object": "payment_intent"}},
        }
    )
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    tour.call(
        "receive_stripe_webhook",
        200,
        {"Stripe-Signature": header, "content-type": "application/json"},
        raw=payload,
    )
    tour.call("detach_payment_method", 204, p.headers, path={"pm_id": cards[0]["id"]})

    every = {op["operationId"] for methods in doc["paths"].values() for op in methods.values()}
    assert set(tour.seen) == every, sorted(every - set(tour.seen))
    if os.environ.get("RIDEHAIL_WRITE_EXAMPLES"):
        EXAMPLES.write_text(json.dumps(tour.seen, indent=1, sort_keys=True) + "\n")


def _entries(ride_id: str) -> int:
    with get_engine().connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM journal_entries WHERE ride_id = :r"), {"r": ride_id}
            ).scalar_one()
        )


def test_the_documents_examples_cover_every_operation_and_still_validate() -> None:
    """The examples in the document are real answers (written by the tour above) and
    still fit their schemas; a schema change that an old answer no longer fits fails here
    until the examples are written again."""
    from api.main import app

    doc = app.openapi()
    examples = json.loads(EXAMPLES.read_text())
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            seen = examples.get(op["operationId"])
            assert seen is not None, f"no example for {op['operationId']}"
            answer = op["responses"][seen["status"]]
            content = answer.get("content", {})
            if "application/json" in content:
                shown = content["application/json"]["examples"]["recorded"]["value"]
                assert shown == seen["response"]
                validate(doc, content["application/json"]["schema"], shown, op["operationId"])
            body = op.get("requestBody", {}).get("content", {})
            for ctype in ("application/json", "application/x-www-form-urlencoded"):
                if ctype in body and "examples" in body[ctype]:
                    value = body[ctype]["examples"]["recorded"]["value"]
                    if (
                        ctype == "application/json"
                        and op["operationId"] != "receive_stripe_webhook"
                    ):
                        validate(doc, body[ctype]["schema"], value, f"{method} {path} body")
    for name, model in EVENT_MODELS.items():
        assert model.__doc__, name
