from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from domain.fares import compute_fare
from infra.db import get_engine, utcnow
from tests.factories import DROPOFF, PICKUP, advance, grant_offer, register, request_ride

pytestmark = pytest.mark.live_state


def _set(ride_id: str, **columns: Any) -> None:
    """Move a ride's timestamps into the past (the API has no clock to turn)."""
    sets = ", ".join(f"{k} = :{k}" for k in columns)
    with get_engine().begin() as conn:
        conn.execute(text(f"UPDATE rides SET {sets} WHERE id = :id"), {**columns, "id": ride_id})


def test_estimate(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    r = client.post(
        "/api/v1/rides/estimate", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=p.headers
    )
    assert r.status_code == 200
    est = r.json()
    assert set(est) == {"amount", "currency", "distance_m", "duration_s"}
    assert 4500 < est["distance_m"] < 5500  # 3.77 km straight, x1.3 detour
    expected = compute_fare(settings.fare, est["distance_m"], est["duration_s"]).total
    assert est["amount"] == expected.amount
    assert est["currency"] == "usd"
    assert isinstance(est["amount"], int)


def test_estimate_rejects_impossible_routes(client: TestClient) -> None:
    p = register(client, "passenger")
    same = client.post(
        "/api/v1/rides/estimate", json={"pickup": PICKUP, "dropoff": PICKUP}, headers=p.headers
    )
    assert same.status_code == 422
    assert same.json()["code"] == "route_too_short"
    far = client.post(
        "/api/v1/rides/estimate",
        json={"pickup": PICKUP, "dropoff": {"lat": 48.85, "lng": 2.35}},
        headers=p.headers,
    )
    assert far.status_code == 422
    assert far.json()["code"] == "route_too_long"
    nan = client.post(
        "/api/v1/rides/estimate",
        content='{"pickup": {"lat": NaN, "lng": 1}, "dropoff": {"lat": 1, "lng": 1}}',
        headers={**p.headers, "content-type": "application/json"},
    )
    assert nan.status_code == 422


def test_a_cash_ride_from_request_to_completion(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    assert ride["status"] == "requested"
    assert ride["passenger_id"] == p.id
    assert ride["driver_id"] is None
    assert ride["payment"] == "cash"
    assert ride["pickup"] == PICKUP
    assert ride["dropoff"] == DROPOFF
    assert ride["fare"] is None
    assert ride["estimate"]["currency"] == "usd"

    accepted = advance(client, ride["id"], d, "accept")
    assert accepted["status"] == "accepted"
    assert accepted["driver_id"] == d.id
    assert advance(client, ride["id"], d, "arrive")["status"] == "arrived"
    started = advance(client, ride["id"], d, "start")
    assert started["status"] == "in_progress"
    # a ten-minute trip
    _set(ride["id"], started_at=utcnow() - timedelta(minutes=10))
    done = advance(client, ride["id"], d, "complete")
    assert done["status"] == "completed"
    assert 599 <= done["duration_s"] <= 601
    assert done["distance_m"] == ride["distance_m"]  # no travelled path yet: the estimate's
    expected = compute_fare(settings.fare, done["distance_m"], done["duration_s"]).total
    assert done["fare"] == {"amount": expected.amount, "currency": "usd"}

    for who in (p, d):
        seen = client.get(f"/api/v1/rides/{ride['id']}", headers=who.headers)
        assert seen.status_code == 200
        assert seen.json()["status"] == "completed"
        assert seen.json()["fare"] == done["fare"]


def test_idempotency_key_replays_and_refuses_a_different_body(client: TestClient) -> None:
    p = register(client, "passenger")
    first = request_ride(client, p, **{"Idempotency-Key": "req-1"})
    again = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers={**p.headers, "Idempotency-Key": "req-1"},
    )
    assert again.status_code == 201
    assert again.json() == first
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": {"lat": 52.51, "lng": 13.42}, "payment": "cash"},
        headers={**p.headers, "Idempotency-Key": "req-1"},
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_key_reused"
    with get_engine().connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rides")).scalar_one() == 1


def test_keys_belong_to_their_user(client: TestClient) -> None:
    a = register(client, "passenger")
    b = register(client, "passenger")
    ra = request_ride(client, a, **{"Idempotency-Key": "same"})
    rb = request_ride(client, b, **{"Idempotency-Key": "same"})
    assert ra["id"] != rb["id"]


def test_a_passenger_cannot_hold_two_open_rides(client: TestClient) -> None:
    p = register(client, "passenger")
    request_ride(client, p)
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert r.status_code == 409
    assert r.json() == {"detail": "you already have an open ride", "code": "ride_already_open"}


def test_a_new_ride_after_the_last_one_ended(client: TestClient) -> None:
    p = register(client, "passenger")
    first = request_ride(client, p)
    assert client.post(f"/api/v1/rides/{first['id']}/cancel", headers=p.headers).status_code == 200
    second = request_ride(client, p)
    assert second["id"] != first["id"]


@pytest.mark.parametrize(
    ("done", "action"),
    [
        ((), "arrive"),
        ((), "start"),
        ((), "complete"),
        (("accept",), "start"),
        (("accept",), "complete"),
        (("accept",), "no-show"),
        (("accept",), "accept"),
        (("accept", "arrive"), "complete"),
        (("accept", "arrive", "start"), "arrive"),
        (("accept", "arrive", "start", "complete"), "start"),
    ],
)
def test_illegal_transitions_are_409(
    client: TestClient, done: tuple[str, ...], action: str
) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, *done)
    r = client.post(f"/api/v1/rides/{ride['id']}/{action}", headers=d.headers)
    if not done and action != "accept":
        # nobody's ride yet: the driver is not its driver
        assert r.status_code == 404
        return
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "illegal_transition"
    assert "cannot" in r.json()["detail"]


def test_another_users_ride_is_404(client: TestClient) -> None:
    p = register(client, "passenger")
    stranger = register(client, "passenger")
    d = register(client, "driver")
    other_driver = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    for who in (stranger, other_driver):
        r = client.get(f"/api/v1/rides/{ride['id']}", headers=who.headers)
        assert r.status_code == 404
        assert r.json()["code"] == "ride_not_found"
    for action in ("arrive", "cancel"):
        r = client.post(f"/api/v1/rides/{ride['id']}/{action}", headers=other_driver.headers)
        assert r.status_code == 404
    assert (
        client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=stranger.headers).status_code
        == 404
    )
    missing = client.get(f"/api/v1/rides/{uuid.uuid4()}", headers=p.headers)
    assert missing.status_code == 404
    bad = client.get("/api/v1/rides/not-a-uuid", headers=p.headers)
    assert bad.status_code == 422
    assert bad.json()["code"] == "validation_error"


def test_roles_are_enforced(client: TestClient) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=d.headers,
    )
    assert r.status_code == 403
    assert r.json()["code"] == "role_forbidden"
    ride = request_ride(client, p)
    r = client.post(f"/api/v1/rides/{ride['id']}/accept", headers=p.headers)
    assert r.status_code == 403


def test_a_driver_holds_one_ride_at_a_time(client: TestClient) -> None:
    d = register(client, "driver")
    r1 = request_ride(client, register(client, "passenger"))
    r2 = request_ride(client, register(client, "passenger"))
    advance(client, r1["id"], d, "accept")
    grant_offer(r2["id"], d.id)  # offered while busy (a stale offer): still refused
    r = client.post(f"/api/v1/rides/{r2['id']}/accept", headers=d.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "driver_busy"


def test_cancellation_is_free_within_the_grace_period_and_charged_after(
    client: TestClient,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    free = request_ride(client, p)
    advance(client, free["id"], d, "accept")
    r = client.post(
        f"/api/v1/rides/{free['id']}/cancel", json={"reason": "changed my mind"}, headers=p.headers
    )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "cancelled"
    assert body["cancelled_by"] == "passenger"
    assert body["cancel_reason"] == "changed my mind"
    assert body["fee"] is None

    late = request_ride(client, p)
    advance(client, late["id"], d, "accept")
    _set(
        late["id"], accepted_at=utcnow() - timedelta(seconds=settings.fare.cancellation_grace_s + 5)
    )
    body = client.post(f"/api/v1/rides/{late['id']}/cancel", json={}, headers=p.headers).json()
    assert body["fee"] == {"amount": settings.fare.cancellation_fee, "currency": "usd"}


def test_the_driver_cancelling_costs_the_passenger_nothing(client: TestClient) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    _set(ride["id"], accepted_at=utcnow() - timedelta(hours=1))
    body = client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=d.headers).json()
    assert body["status"] == "cancelled"
    assert body["fee"] is None
    assert body["cancelled_by"] == "driver"


def test_a_ride_in_progress_cannot_be_cancelled_by_its_passenger(client: TestClient) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive", "start")
    r = client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers)
    assert r.status_code == 409
    assert r.json()["code"] == "illegal_transition"


def test_no_show_after_waiting(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    d = register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive")
    early = client.post(f"/api/v1/rides/{ride['id']}/no-show", headers=d.headers)
    assert early.status_code == 409
    assert early.json()["code"] == "no_show_too_early"
    _set(ride["id"], arrived_at=utcnow() - timedelta(seconds=settings.fare.no_show_wait_s + 1))
    body = advance(client, ride["id"], d, "no-show")
    assert body["status"] == "no_show"
    assert body["fee"] == {"amount": settings.fare.no_show_fee, "currency": "usd"}


def test_my_rides_newest_first_with_a_cursor(client: TestClient) -> None:
    p = register(client, "passenger")
    d = register(client, "driver")
    ids = []
    for _ in range(5):
        ride = request_ride(client, p)
        ids.append(ride["id"])
        client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/rides", params=params, headers=p.headers).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert pages == 3
    assert client.get("/api/v1/rides", headers=d.headers).json() == {
        "items": [],
        "next_cursor": None,
    }
    bad = client.get("/api/v1/rides", params={"cursor": "%%%"}, headers=p.headers)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    too_many = client.get("/api/v1/rides", params={"limit": 1000}, headers=p.headers)
    assert too_many.status_code == 422


def test_bad_bodies_get_the_right_status_and_shape(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    p = register(client, "passenger")
    r = client.post(
        "/api/v1/rides", content=b"pickup=1", headers={**p.headers, "content-type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["code"] == "unsupported_media_type"
    big = b'{"pad": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    r = client.post(
        "/api/v1/rides", content=big, headers={**p.headers, "content-type": "application/json"}
    )
    assert r.status_code == 413
    assert r.json()["code"] == "payload_too_large"
    r = client.post(
        "/api/v1/rides",
        content=b"{not json",
        headers={**p.headers, "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "bitcoin"},
        headers=p.headers,
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash", "surprise": 1},
        headers=p.headers,
    )
    assert r.status_code == 422
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert r.json() == {"detail": "Not Found", "code": "not_found"}
    r = client.delete("/api/v1/rides")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


def test_operations_endpoints(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "broker": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/token",
        "/api/v1/auth/refresh",
        "/api/v1/users/me",
        "/api/v1/rides/estimate",
        "/api/v1/rides",
        "/api/v1/rides/{ride_id}",
        "/api/v1/rides/{ride_id}/accept",
        "/api/v1/rides/{ride_id}/arrive",
        "/api/v1/rides/{ride_id}/start",
        "/api/v1/rides/{ride_id}/complete",
        "/api/v1/rides/{ride_id}/no-show",
        "/api/v1/rides/{ride_id}/cancel",
    ):
        assert path in paths
    from infra.metrics import scrape

    assert b"ridehail_http_requests_total" in scrape()[0]


def test_a_card_ride_needs_a_saved_card(client: TestClient) -> None:
    p = register(client, "passenger")
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "card"},
        headers=p.headers,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "no_card"


def test_fraud_basics_velocity_and_amount_cap(client: TestClient, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(settings, "fraud", replace(settings.fraud, rides_per_hour=2))
    p = register(client, "passenger")
    for _ in range(2):
        ride = request_ride(client, p)
        client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers)
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=p.headers,
    )
    assert r.status_code == 429
    assert r.json()["code"] == "too_many_rides"
    assert 1 <= int(r.headers["retry-after"]) <= 3600
    monkeypatch.setattr(settings, "fraud", replace(settings.fraud, max_ride_amount=500))
    other = register(client, "passenger")
    r = client.post(
        "/api/v1/rides",
        json={"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
        headers=other.headers,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "amount_over_cap"
    monkeypatch.setattr(settings, "fraud", replace(settings.fraud, cards_per_hour=1))
    assert client.post("/api/v1/payments/setup-intent", headers=other.headers).status_code == 200
    r = client.post("/api/v1/payments/setup-intent", headers=other.headers)
    assert r.status_code == 429
    assert r.json()["code"] == "too_many_cards"


def test_the_dispatch_sweep_sends_a_due_ride_on_once_per_lease(client: TestClient) -> None:
    """Beat's sweep runs every second; behind a slow or restarting worker it must not
    queue one more move per ride per second (the chaos run saw hundreds pile up)."""
    import uuid
    from datetime import timedelta

    from sqlmodel import col, select

    from infra.db import session_scope, utcnow
    from infra.models import OutboxMessage, Ride
    from workers.dispatch import SWEEP_LEASE_S, sweep

    p = register(client, "passenger")
    ride_id = uuid.UUID(request_ride(client, p)["id"])
    with session_scope() as session:
        ride = session.get(Ride, ride_id)
        assert ride is not None
        ride.dispatch_deadline = utcnow() - timedelta(seconds=1)  # due now
        session.add(ride)

    def moves() -> int:
        with session_scope() as session:
            rows = session.exec(
                select(OutboxMessage).where(col(OutboxMessage.task) == "dispatch.advance")
            ).all()
            return sum(1 for m in rows if m.task_kwargs.get("ride_id") == str(ride_id))

    before = moves()
    for _ in range(5):  # five sweeps before any worker ran the move
        sweep.run()
    assert moves() == before + 1
    with session_scope() as session:
        ride = session.get(Ride, ride_id)
        assert ride is not None
        assert ride.dispatch_deadline is not None
        assert ride.dispatch_deadline > utcnow() + timedelta(seconds=SWEEP_LEASE_S - 2)
        ride.dispatch_deadline = utcnow() - timedelta(seconds=1)  # the lease ran out
        session.add(ride)
    sweep.run()
    assert moves() == before + 2
