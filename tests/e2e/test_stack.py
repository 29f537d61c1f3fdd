"""`ridehail run` (what `make run` starts) as a user gets it: every process, real ports,
the SQLite default, a cash ride over HTTP, and everything gone after SIGTERM."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.wait import until

pytestmark = pytest.mark.live_state

BIN = Path(sys.executable).parent


def _open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def test_every_service_answers(stack: dict[str, Any]) -> None:
    ports = stack["ports"]
    ready = httpx.get(f"{stack['base']}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert httpx.get(f"{stack['base']}/docs", timeout=5).status_code == 200
    # Flower, and the Stripe and FCM stand-ins, on the ports their settings name
    until(lambda: httpx.get(f"http://127.0.0.1:{ports['flower']}/healthcheck").status_code == 200)
    stripe = httpx.post(
        f"http://127.0.0.1:{ports['stripe']}/v1/customers",
        auth=("sk_test_x", ""),
        data={"email": "e2e@example.com"},
    )
    assert stripe.status_code == 200
    assert httpx.get(f"http://127.0.0.1:{ports['fcm']}/healthz").json() == {"status": "ok"}


def test_flower_is_behind_basic_auth_and_shows_the_workers(stack: dict[str, Any]) -> None:
    flower = f"http://127.0.0.1:{stack['ports']['flower']}"
    until(lambda: httpx.get(f"{flower}/healthcheck").status_code == 200)
    assert httpx.get(f"{flower}/").status_code == 401
    assert httpx.get(f"{flower}/api/workers", auth=("admin", "wrong")).status_code == 401
    auth = ("admin", "dev-only-flower")  # the development default; refused in production
    workers = until(
        lambda: (
            (r := httpx.get(f"{flower}/api/workers?refresh=1", auth=auth, timeout=10))
            and r.status_code == 200
            and len(r.json()) >= 2
            and r.json()
        ),
        timeout=30,
    )
    names = sorted(name.split("@")[0] for name in workers)
    assert names == ["push", "worker"]
    queues = {q["name"] for w in workers.values() for q in (w.get("active_queues") or [])}
    assert {"payments", "default", "notifications", "promotions"} <= queues


def test_a_cash_ride_over_http_reaches_the_ledger(stack: dict[str, Any]) -> None:
    with httpx.Client(base_url=f"{stack['base']}/api/v1", timeout=10) as http:
        tokens = {}
        for role in ("passenger", "driver"):
            r = http.post(
                "/auth/register",
                json={
                    "email": f"{role}@e2e.io",
                    "password": "pass-word-1",
                    "name": role,
                    "role": role,
                },
            )
            assert r.status_code == 201, r.text
            t = http.post(
                "/auth/token", data={"username": f"{role}@e2e.io", "password": "pass-word-1"}
            )
            tokens[role] = {"Authorization": f"Bearer {t.json()['access_token']}"}
        # both apps register their device for pushes
        for role in ("passenger", "driver"):
            r = http.post(
                "/devices",
                json={"token": f"e2e-{role}-phone", "platform": "android"},
                headers=tokens[role],
            )
            assert r.status_code == 201, r.text
        # the driver goes online near the pickup, as the app does
        assert (
            http.post(
                "/drivers/me/status", json={"status": "online"}, headers=tokens["driver"]
            ).status_code
            == 200
        )
        r = http.post(
            "/drivers/me/location",
            json={"lat": 52.521, "lng": 13.405, "recorded_at": time.time()},
            headers=tokens["driver"],
        )
        assert r.status_code == 202
        ride = http.post(
            "/rides",
            json={
                "pickup": {"lat": 52.52, "lng": 13.405},
                "dropoff": {"lat": 52.5, "lng": 13.45},
                "payment": "cash",
            },
            headers={**tokens["passenger"], "Idempotency-Key": "e2e-1"},
        ).json()
        # dispatch (worker) offers it to the driver
        offers = until(
            lambda: http.get("/drivers/me/offers", headers=tokens["driver"]).json()["items"],
            timeout=10,
        )
        assert offers[0]["ride_id"] == ride["id"]
        for action in ("accept", "arrive", "start", "complete"):
            r = http.post(f"/rides/{ride['id']}/{action}", headers=tokens["driver"])
            assert r.status_code == 200, r.text
        final = http.get(f"/rides/{ride['id']}", headers=tokens["passenger"]).json()
        assert final["status"] == "completed"
        assert final["fare"]["amount"] > 0

        # every step in each app's notification log, sent (by the push worker, to FCM)
        def log(role: str) -> list[tuple[str, str]]:
            items = http.get("/notifications", headers=tokens[role]).json()["items"]
            return [(n["kind"], n["status"]) for n in reversed(items)]

        steps = ["driver_assigned", "driver_arrived", "trip_started", "trip_completed"]
        until(lambda: log("passenger") == [(k, "sent") for k in steps], timeout=30)
        until(lambda: log("driver") == [("offer", "sent"), ("trip_completed", "sent")], timeout=30)
        fcm = httpx.get(f"http://127.0.0.1:{stack['ports']['fcm']}/_requests").json()
        to_passenger = [
            m["message"]["data"]["type"]
            for m in fcm
            if m["message"]["token"] == "e2e-passenger-phone"
        ]
        assert sorted(to_passenger) == sorted(steps)  # once each (two push processes: any order)

    db = stack["data"] / "ridehail.db"

    def ledger() -> list[Any]:
        with sqlite3.connect(db) as conn:
            return conn.execute(
                "SELECT account, amount FROM ledger_lines l JOIN journal_entries e "
                "ON e.id = l.entry_id WHERE e.key = ?",
                (f"ride:{ride['id']}:fare",),
            ).fetchall()

    lines = until(ledger, timeout=20)
    assert sum(amount for _, amount in lines) == 0
    assert any(amount == final["fare"]["amount"] for _, amount in lines)


def test_a_card_ride_with_a_card_saved_through_the_setup_intent(stack: dict[str, Any]) -> None:
    import stripe

    base_stripe = f"http://127.0.0.1:{stack['ports']['stripe']}"
    with httpx.Client(base_url=f"{stack['base']}/api/v1", timeout=10) as http:
        tokens = {}
        for role in ("passenger", "driver"):
            email = f"card-{role}@e2e.io"
            http.post(
                "/auth/register",
                json={"email": email, "password": "pass-word-1", "name": role, "role": role},
            )
            t = http.post("/auth/token", data={"username": email, "password": "pass-word-1"})
            tokens[role] = {"Authorization": f"Bearer {t.json()['access_token']}"}
        si = http.post("/payments/setup-intent", headers=tokens["passenger"]).json()
        # the device confirms with Stripe's SDK and the client secret
        device = stripe.StripeClient("pk_test_device", base_addresses={"api": base_stripe})
        device.v1.setup_intents.confirm(
            si["setup_intent_id"],
            params={"payment_method": "pm_card_visa", "client_secret": si["client_secret"]},
        )
        cards = http.get("/payments/methods", headers=tokens["passenger"]).json()["items"]
        assert [c["brand"] for c in cards] == ["visa"]
        http.post("/drivers/me/status", json={"status": "online"}, headers=tokens["driver"])
        http.post(
            "/drivers/me/location",
            json={"lat": 52.5205, "lng": 13.405, "recorded_at": time.time()},
            headers=tokens["driver"],
        )
        ride = http.post(
            "/rides",
            json={
                "pickup": {"lat": 52.52, "lng": 13.405},
                "dropoff": {"lat": 52.5, "lng": 13.45},
                "payment": "card",
            },
            headers=tokens["passenger"],
        ).json()

        def payments() -> list[dict[str, Any]]:
            return http.get(
                "/payments", params={"ride_id": ride["id"]}, headers=tokens["passenger"]
            ).json()["items"]

        until(lambda: payments() and payments()[0]["status"] == "requires_capture", timeout=15)
        until(
            lambda: http.get("/drivers/me/offers", headers=tokens["driver"]).json()["items"],
            timeout=10,
        )
        for action in ("accept", "arrive", "start", "complete"):
            assert (
                http.post(f"/rides/{ride['id']}/{action}", headers=tokens["driver"]).status_code
                == 200
            )
        fare = http.get(f"/rides/{ride['id']}", headers=tokens["passenger"]).json()["fare"]
        paid = until(
            lambda: (p := payments()) and p[0]["status"] == "succeeded" and p[0], timeout=15
        )
        assert paid["amount_received"] == fare["amount"]


def _families(metrics: str) -> dict[str, float]:
    """Each family's samples summed (every process's, through the multi-process files),
    from `ridehail metrics` on its internal port."""
    text = httpx.get(f"{metrics}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ridehail_"):
            name, _, value = line.rpartition(" ")
            family = name.split("{")[0]
            for suffix in ("_bucket", "_count", "_sum", "_created"):
                family = family.removesuffix(suffix)
            out[family] = out.get(family, 0.0) + float(value)
    return out


# the simulator's own bound (its load, then its grace and settling) is the one that speaks
@pytest.mark.timeout(330)
def test_the_simulator_drives_the_stack_and_metrics_count_every_family(
    stack: dict[str, Any],
) -> None:
    ports = stack["ports"]
    cmd = [str(BIN / "ridehail"), "simulate", "--base-url", stack["base"]]
    cmd += ["--drivers", "12", "--passengers", "6", "--minutes", "0.4", "--speed-ms", "45"]
    cmd += ["--grace-s", "90", "--settle-s", "40", "--seed", "7", "--json", "--no-progress"]
    cmd += ["--stripe-base", f"http://127.0.0.1:{ports['stripe']}"]
    sim = subprocess.Popen(cmd, env=stack["env"], stdout=subprocess.PIPE, text=True)
    # while it runs: the apps' streams are open
    until(lambda: _families(stack["metrics"]).get("ridehail_sse_clients", 0) > 0, timeout=60)
    out, _ = sim.communicate(timeout=300)
    summary = json.loads(out)
    assert sim.returncode == 0, summary
    rides, pay = summary["rides"], summary["payments"]
    assert rides["completed"] > 0
    assert rides["requested"] == rides["completed"] + rides["cancelled"] + rides["expired"]
    assert pay["card_unsettled"] == 0
    assert pay["cash_settled"] == pay["cash_rides"]
    assert summary["pings"]["accepted"] == summary["pings"]["sent"] > 0
    assert summary["pushes"].get("sent", 0) > 0
    assert summary["latency_ms"]["request_to_offer_p50"] is not None
    assert summary["latency_ms"]["ping_to_sse_p50"] is not None
    assert not summary["errors"]
    families = _families(stack["metrics"])
    for family in (
        "ridehail_http_request_seconds",
        "ridehail_http_requests_total",
        "ridehail_pings_total",
        "ridehail_sse_connections_total",
        "ridehail_dispatch_first_offer_seconds",
        "ridehail_tasks_sent_total",
        "ridehail_tasks_total",
        "ridehail_payments",
        "ridehail_webhook_lag_seconds",
        "ridehail_pushes_total",
    ):
        assert families.get(family, 0) > 0, family
    # gauges of the moment: present for every queue (empty now: the workers kept up)
    text = httpx.get(f"{stack['metrics']}/metrics", timeout=10).text
    # the public API port does not serve them (traffic by route, payments, queues)
    assert httpx.get(f"{stack['base']}/metrics", timeout=10).status_code == 404
    for queue in ("payments", "notifications", "promotions", "default"):
        assert f'ridehail_queue_depth{{queue="{queue}"}}' in text


def test_sigterm_stops_everything_it_started(stack: dict[str, Any]) -> None:
    proc = stack["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    until(lambda: not any(_open(p) for p in stack["ports"].values()), timeout=10)
    log = (stack["data"] / "stack.log").read_text()
    assert "ridehail: stopped" in log
    print(f"stack ready in {stack['ready_s']:.1f}s")
