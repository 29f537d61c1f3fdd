"""Pushes from ride events, delivered by a real worker to the FCM stand-in: one message per
device with the payload the app routes on, retried after FCM's UNAVAILABLE, dead tokens
pruned, nothing sent twice, and the log of what each user was told."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import text

from infra.db import get_engine
from infra.queue import celery_app
from tests.factories import PASSWORD, Account, advance, register, request_ride
from tests.wait import until


def _fcm(settings: Any) -> str:
    base: str = settings.fcm_endpoint
    httpx.delete(f"{base}/_requests")
    httpx.delete(f"{base}/_faults")
    return base


def _sent(fcm: str, ride_id: str | None = None) -> list[dict[str, Any]]:
    seen = httpx.get(f"{fcm}/_requests").json()
    return [
        s for s in seen if ride_id is None or s["message"].get("data", {}).get("ride_id") == ride_id
    ]


def _device(client: TestClient, who: Account, token: str, platform: str = "android") -> None:
    r = client.post(
        "/api/v1/devices", json={"token": token, "platform": platform}, headers=who.headers
    )
    assert r.status_code == 201, r.text


def _log(client: TestClient, who: Account) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/v1/notifications", headers=who.headers).json()[
        "items"
    ]
    return items


def test_every_step_of_a_ride_reaches_each_device_once(client: TestClient, settings: Any) -> None:
    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    _device(client, p, f"p-phone-{p.id}")
    _device(client, p, f"p-tablet-{p.id}", "ios")
    _device(client, d, f"d-phone-{d.id}")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    kinds = ["driver_assigned", "driver_arrived", "trip_started", "trip_completed"]
    # the passenger's two devices hear every step; the driver the offer and the end
    until(lambda: len(_sent(fcm, ride["id"])) == 2 * len(kinds) + 2)
    sent = _sent(fcm, ride["id"])
    assert all(s["status"] == 200 for s in sent)
    per_device = Counter((s["message"]["token"], s["message"]["data"]["type"]) for s in sent)
    for token in (f"p-phone-{p.id}", f"p-tablet-{p.id}"):
        assert {k: per_device[(token, k)] for k in kinds} == dict.fromkeys(kinds, 1)
    assert per_device[(f"d-phone-{d.id}", "trip_completed")] == 1
    # FCM keeps at most 4 collapse keys per device: a ride uses one on each device
    for token in (f"p-phone-{p.id}", f"p-tablet-{p.id}", f"d-phone-{d.id}"):
        keys = {
            s["message"].get("android", {}).get("collapse_key")
            for s in sent
            if s["message"]["token"] == token
        }
        assert keys - {None} == {f"ride-{ride['id']}"}, keys
    offer = next(s["message"] for s in sent if s["message"]["data"]["type"] == "offer")
    assert offer["token"] == f"d-phone-{d.id}"
    assert "notification" not in offer  # data-only: the driver app rings itself
    assert offer["android"]["priority"] == "high"
    assert offer["android"]["ttl"] == "60s"  # no longer than the offer
    # a background push on iOS: Apple refuses priority 10 there
    assert offer["apns"]["headers"]["apns-priority"] == "5"
    assert offer["apns"]["headers"]["apns-push-type"] == "background"
    assert int(offer["apns"]["headers"]["apns-expiration"]) <= time.time() + 60
    assert set(offer["data"]) == {
        "type",
        "ride_id",
        "offer_id",
        "expires_at",
        "screen",
        "notification_id",
    }
    assigned = next(s["message"] for s in sent if s["message"]["data"]["type"] == "driver_assigned")
    assert assigned["data"] == {
        "type": "driver_assigned",
        "ride_id": ride["id"],
        "screen": "ride",
        "notification_id": assigned["data"]["notification_id"],
    }
    uuid.UUID(assigned["data"]["notification_id"])
    assert assigned["android"]["priority"] == "high"
    assert assigned["android"]["collapse_key"] == f"ride-{ride['id']}"
    assert assigned["apns"]["headers"]["apns-priority"] == "10"
    assert assigned["android"]["ttl"] == "300s"
    done = next(s["message"] for s in sent if s["message"]["data"]["type"] == "trip_completed")
    passenger_done = next(
        s["message"]
        for s in sent
        if s["message"]["data"]["type"] == "trip_completed"
        and s["message"]["token"] != f"d-phone-{d.id}"
    )
    assert passenger_done["notification"]["title"] == "You have arrived"
    assert passenger_done["notification"]["body"].startswith("Your fare: ")
    assert done["data"]["ride_id"] == ride["id"]
    # the passenger's log: every step, sent
    until(lambda: len(_log(client, p)) == 4 and all(n["status"] == "sent" for n in _log(client, p)))
    assert [n["kind"] for n in _log(client, p)][::-1] == kinds


def test_unavailable_is_retried_and_a_dead_token_is_pruned(
    client: TestClient, settings: Any
) -> None:
    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    good, dead = f"good-{p.id}", f"unregistered-{p.id}"
    _device(client, p, good)
    _device(client, p, dead)
    r = httpx.post(
        f"{fcm}/_faults", json={"errors": ["UNAVAILABLE"], "token": good, "retry_after": 1}
    )
    assert r.status_code == 200
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    until(
        lambda: (
            [s["status"] for s in _sent(fcm, ride["id"]) if s["message"]["token"] == good]
            == [503, 200]
        ),
        timeout=30,
    )
    to_dead = [s["status"] for s in _sent(fcm, ride["id"]) if s["message"]["token"] == dead]
    assert to_dead == [404]  # tried once, then forgotten
    with get_engine().connect() as conn:
        tokens = (
            conn.execute(text("SELECT token FROM devices WHERE user_id = :u"), {"u": p.id})
            .scalars()
            .all()
        )
    assert tokens == [good]
    until(lambda: _log(client, p)[0]["status"] == "sent")


def test_a_delivery_task_run_twice_sends_nothing_twice(client: TestClient, settings: Any) -> None:
    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    _device(client, p, f"once-{p.id}")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    until(lambda: len(_sent(fcm, ride["id"])) == 1)
    with get_engine().connect() as conn:
        note = conn.execute(
            text("SELECT id FROM notifications WHERE ride_id = :r AND user_id = :u"),
            {"r": ride["id"], "u": p.id},
        ).scalar_one()
    for _ in range(2):  # a redelivery, and once more
        result = celery_app.send_task(
            "notifications.deliver", kwargs={"notification_id": str(note)}
        ).get(timeout=30)
        assert result == "done"
    assert len(_sent(fcm, ride["id"])) == 1


def test_a_user_without_a_device_still_gets_the_log_entry(
    client: TestClient, settings: Any
) -> None:
    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    until(lambda: bool(_log(client, p)) and _log(client, p)[0]["status"] != "queued")
    [entry] = _log(client, p)
    assert (entry["kind"], entry["status"], entry["ride_id"]) == (
        "driver_assigned",
        "failed",
        ride["id"],
    )
    assert _sent(fcm, ride["id"]) == []
    # and unregistering: mine only
    other = register(client, "passenger")
    _device(client, p, f"mine-{p.id}")
    assert client.delete(f"/api/v1/devices/mine-{p.id}", headers=other.headers).status_code == 404
    assert client.delete(f"/api/v1/devices/mine-{p.id}", headers=p.headers).status_code == 204
    assert uuid.UUID(entry["id"])


def test_payments_refunds_and_ratings_are_told_once(client: TestClient, settings: Any) -> None:
    from infra.db import session_scope
    from infra.users import create_user
    from tests.factories import card_passenger, card_ride, held, payment_row

    fcm = _fcm(settings)
    p, d = card_passenger(client), register(client, "driver")
    _device(client, p, f"card-phone-{p.id}")
    _device(client, d, f"driver-phone-{d.id}")
    ride = card_ride(client, p)
    held(ride["id"])
    advance(client, ride["id"], d, "accept", "arrive", "start", "complete")
    until(lambda: (a := payment_row(ride["id"])) is not None and a["status"] == "succeeded")
    # refund part of it (an admin)
    with session_scope() as session:
        create_user(session, email="refunds@example.com", password="x" * 10, name="A", role="admin")
    admin = client.post(
        "/api/v1/auth/token", data={"username": "refunds@example.com", "password": "x" * 10}
    ).json()["access_token"]
    payment = payment_row(ride["id"])
    assert payment is not None
    r = client.post(
        f"/api/v1/payments/{payment['id']}/refunds",
        json={"amount": 100, "reason": "detour"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert r.status_code == 201, r.text
    # the driver rates the passenger
    assert (
        client.post(
            "/api/v1/ratings", json={"ride_id": ride["id"], "stars": 5}, headers=d.headers
        ).status_code
        == 201
    )

    def told(token: str) -> list[str]:
        return [
            s["message"]["data"]["type"]
            for s in _sent(fcm, ride["id"])
            if s["message"]["token"] == token
        ]

    until(
        lambda: (
            {"payment_succeeded", "refunded", "rating_received"} <= set(told(f"card-phone-{p.id}"))
        )
    )
    passenger = Counter(told(f"card-phone-{p.id}"))
    assert (
        passenger["payment_succeeded"],
        passenger["refunded"],
        passenger["rating_received"],
    ) == (
        1,
        1,
        1,
    )
    refund = next(
        s["message"] for s in _sent(fcm, ride["id"]) if s["message"]["data"]["type"] == "refunded"
    )
    assert refund["notification"]["body"] == "1.00 USD is being refunded to your card."


def _admin(client: TestClient, email: str = "promo@example.com") -> dict[str, str]:
    from infra.db import session_scope
    from infra.users import create_user

    with session_scope() as session:
        create_user(session, email=email, password="x" * 10, name="Ops", role="admin")
    token = client.post("/api/v1/auth/token", data={"username": email, "password": "x" * 10})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _opt_in(client: TestClient, who: Account, wanted: bool = True) -> None:
    url = "/api/v1/notifications/preferences"
    r = client.put(url, json={"promotions": wanted}, headers=who.headers)
    assert r.json() == {"promotions": wanted}
    assert client.get(url, headers=who.headers).json() == {"promotions": wanted}


def test_promotions_reach_only_those_who_opted_in(client: TestClient, settings: Any) -> None:
    fcm = _fcm(settings)
    admin = _admin(client)
    keen, shy, deviceless = (register(client, "passenger") for _ in range(3))
    assert client.get("/api/v1/notifications/preferences", headers=shy.headers).json() == {
        "promotions": False  # nobody gets promotions unless they ask
    }
    _opt_in(client, keen)
    _opt_in(client, deviceless)
    _device(client, keen, f"keen-{keen.id}")
    _device(client, shy, f"shy-{shy.id}")
    r = client.post(
        "/api/v1/admin/notifications/broadcast",
        json={"title": "Half price tonight", "body": "Rides after 8 pm"},
        headers=admin,
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "planning"
    url = f"/api/v1/admin/notifications/broadcast/{r.json()['id']}"
    until(lambda: client.get(url, headers=admin).json()["status"] == "done")
    assert client.get(url, headers=admin).json() | {"id": None} == {
        "id": None,
        "status": "done",
        "recipients": 2,
        "sent": 1,
    }
    promos = [
        s["message"]["token"] for s in _sent(fcm) if s["message"]["data"]["type"] == "promotion"
    ]
    assert promos == [f"keen-{keen.id}"]
    assert [n["kind"] for n in _log(client, shy)] == []
    assert (
        client.get(
            f"/api/v1/admin/notifications/broadcast/{uuid.uuid4()}", headers=admin
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/api/v1/admin/notifications/broadcast",
            json={"title": "x", "body": "y"},
            headers=keen.headers,
        ).status_code
        == 403
    )


def test_a_broadcast_never_delays_a_rides_push(client: TestClient, settings: Any) -> None:
    """A hundred and fifty promotions queued first; the ride's push still goes out before
    them."""
    from infra.db import session_scope
    from infra.models import Device, User
    from infra.security import hash_password

    fcm = _fcm(settings)
    admin = _admin(client, "promo2@example.com")
    shared = hash_password("irrelevant-1")
    with session_scope() as session:
        for n in range(150):
            user = User(
                email=f"fan{n}@example.com",
                name=f"Fan {n}",
                role="passenger",
                password_hash=shared,
                promotions=True,
            )
            session.add(user)
            session.flush()
            session.add(Device(user_id=user.id, token=f"fan-{n}-{uuid.uuid4()}", platform="ios"))
    p, d = register(client, "passenger"), register(client, "driver")
    _device(client, p, f"rider-{p.id}")
    ride = request_ride(client, p)
    # every send takes FCM 50 ms: the broadcast lasts seconds, so the ride's push surely
    # meets it however fast this machine is
    slow = {"delay_s": 0.05, "count": 200}
    assert httpx.post(f"{fcm}/_faults", json=slow).status_code == 200
    r = client.post(
        "/api/v1/admin/notifications/broadcast",
        json={"title": "Weekend deal", "body": "10 % off"},
        headers=admin,
    )
    url = f"/api/v1/admin/notifications/broadcast/{r.json()['id']}"
    until(lambda: client.get(url, headers=admin).json()["recipients"] == 150)
    advance(client, ride["id"], d, "accept")  # 150 promotions wait on the worker already
    until(lambda: any(s["message"]["token"] == f"rider-{p.id}" for s in _sent(fcm)), timeout=30)
    seen = _sent(fcm)
    at = next(i for i, s in enumerate(seen) if s["message"]["token"] == f"rider-{p.id}")
    with get_engine().connect() as conn:
        logged = conn.execute(
            text("SELECT created_at FROM notifications WHERE ride_id = :r AND user_id = :u"),
            {"r": ride["id"], "u": p.id},
        ).scalar_one()
    # promotions FCM got between the ride's push being logged and it being sent: the one
    # the worker was sending, the one it had reserved, and those sent while the request
    # committed and enqueued (slack for a loaded machine), never the ~150 behind them
    overtaking = [
        s
        for s in seen[:at]
        if s["message"]["data"]["type"] == "promotion" and s["at"] >= logged.timestamp()
    ]
    assert len(overtaking) <= 10, len(overtaking)
    until(lambda: client.get(url, headers=admin).json()["status"] == "done", timeout=60)
    assert client.get(url, headers=admin).json()["sent"] == 150
    # and the broadcast was still under way: most of it went out after the ride's push
    seen = _sent(fcm)
    at = next(i for i, s in enumerate(seen) if s["message"]["token"] == f"rider-{p.id}")
    assert sum(1 for s in seen[at:] if s["message"]["data"]["type"] == "promotion") > 75


def test_the_passenger_is_told_once_when_the_driver_is_about_to_arrive(
    client: TestClient, settings: Any, monkeypatch: Any
) -> None:
    import time

    from tests.factories import PICKUP

    monkeypatch.setattr(settings, "eta_interval_s", 0)  # an ETA on every ping
    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    _device(client, p, f"waiting-{p.id}")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    now = time.time()

    def ping(lat: float, ago: float) -> None:
        fix = {"lat": lat, "lng": PICKUP["lng"], "recorded_at": now - ago}
        r = client.post("/api/v1/drivers/me/location", json=fix, headers=d.headers)
        assert r.status_code == 202, r.text

    def arriving() -> list[dict[str, Any]]:
        return [
            s["message"]
            for s in _sent(fcm, ride["id"])
            if s["message"]["data"]["type"] == "driver_arriving"
        ]

    ping(PICKUP["lat"] + 0.05, ago=300)  # 5.5 km away: minutes out, nothing said
    until(lambda: len(_sent(fcm, ride["id"])) >= 1)  # the assigned push went out
    assert arriving() == []
    ping(PICKUP["lat"] + 0.001, ago=20)  # 110 m: about to arrive
    ping(PICKUP["lat"] + 0.0005, ago=10)
    until(lambda: len(arriving()) == 1)
    assert arriving()[0]["android"]["priority"] == "high"
    assert arriving()[0]["android"]["ttl"] == "120s"
    time.sleep(0.5)
    assert len(arriving()) == 1  # once per ride


def test_a_fix_is_accepted_when_the_arriving_notice_cannot_be_sent(
    client: TestClient, settings: Any, monkeypatch: Any
) -> None:
    """The broker out of reach when the driver comes close: the fix is still stored and
    the answer says so (never a 500 for a fix accepted), and the next close fix sends the
    notice once the broker is back."""
    import time

    import kombu.exceptions

    import api.eta
    from tests.factories import PICKUP

    monkeypatch.setattr(settings, "eta_interval_s", 0)
    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    _device(client, p, f"waiting-{p.id}")
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    real_send = api.eta.send_now
    tried: list[str] = []

    def broker_down(task: str, **_kwargs: Any) -> None:
        tried.append(task)
        raise kombu.exceptions.OperationalError("Error 111 connecting to the broker")

    monkeypatch.setattr(api.eta, "send_now", broker_down)
    now = time.time()
    fix = {"lat": PICKUP["lat"] + 0.001, "lng": PICKUP["lng"], "recorded_at": now - 20}
    r = client.post("/api/v1/drivers/me/location", json=fix, headers=d.headers)
    assert r.status_code == 202, r.text
    assert r.json()["accepted"] == 1
    assert tried == ["notifications.arriving"]
    position = client.get(f"/api/v1/rides/{ride['id']}/driver-location", headers=p.headers)
    assert position.json()["lat"] == fix["lat"]

    monkeypatch.setattr(api.eta, "send_now", real_send)
    fix = {"lat": PICKUP["lat"] + 0.0005, "lng": PICKUP["lng"], "recorded_at": now - 10}
    assert client.post("/api/v1/drivers/me/location", json=fix, headers=d.headers).is_success
    until(
        lambda: [
            s for s in _sent(fcm, ride["id"]) if s["message"]["data"]["type"] == "driver_arriving"
        ]
    )


def test_cancellations_expiry_and_a_declined_card_are_told(
    client: TestClient, settings: Any
) -> None:
    from datetime import timedelta

    from domain.usecases import rides as ride_cases
    from infra.db import utcnow
    from infra.unit_of_work import make_context, sql_unit_of_work
    from tests.factories import card_passenger, card_ride

    fcm = _fcm(settings)
    p, d = register(client, "passenger"), register(client, "driver")
    _device(client, p, f"p-{p.id}")
    _device(client, d, f"d-{d.id}")

    def kinds(token: str, ride_id: str) -> list[str]:
        return [
            s["message"]["data"]["type"]
            for s in _sent(fcm, ride_id)
            if s["message"]["token"] == token
        ]

    # the passenger cancels after the grace period: the driver is told, the passenger too
    # (a fee applies)
    ride = request_ride(client, p)
    advance(client, ride["id"], d, "accept")
    with get_engine().begin() as conn:
        conn.execute(
            text("UPDATE rides SET accepted_at = :t WHERE id = :r"),
            {"t": utcnow() - timedelta(minutes=10), "r": ride["id"]},
        )
    assert client.post(f"/api/v1/rides/{ride['id']}/cancel", headers=p.headers).status_code == 200
    until(lambda: "ride_cancelled" in kinds(f"d-{d.id}", ride["id"]))
    until(lambda: "ride_cancelled" in kinds(f"p-{p.id}", ride["id"]))
    fee_note = next(
        s["message"]
        for s in _sent(fcm, ride["id"])
        if s["message"]["token"] == f"p-{p.id}" and s["message"]["data"]["type"] == "ride_cancelled"
    )
    assert "A fee of 5.00 USD applies." in fee_note["notification"]["body"]
    # dispatch gives up: the passenger hears no driver was found
    lonely = request_ride(client, p)
    with sql_unit_of_work() as uow:
        ride_cases.expire(uow, make_context(), uuid.UUID(lonely["id"]))
    until(lambda: kinds(f"p-{p.id}", lonely["id"]) == ["no_driver_found"])
    # a card declined when the hold is made: the rider is told to fix it
    declined = card_passenger(client, "pm_card_chargeCustomerFail")
    _device(client, declined, f"c-{declined.id}")
    card_ride = card_ride(client, declined)
    until(lambda: "payment_failed" in kinds(f"c-{declined.id}", card_ride["id"]))
    until(lambda: "ride_cancelled" in kinds(f"c-{declined.id}", card_ride["id"]))


def _note_for(token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A user with one device and one logged notification (no delivery job queued)."""
    from infra.db import session_scope
    from infra.models import Device, Notification
    from infra.users import create_user

    with session_scope() as session:
        user = create_user(
            session, email=f"{token}@example.com", password=PASSWORD, name="Pat", role="passenger"
        )
        session.add(Device(user_id=user.id, token=token, platform="android"))
        note = Notification(
            user_id=user.id, kind="trip_started", key=f"k-{token}", title="t", body="b", data={}
        )
        session.add(note)
        session.flush()
        return user.id, note.id


def test_a_delivery_its_sender_left_claimed_is_not_sent_again_and_settles_unknown(
    db: None, settings: Any
) -> None:
    """A push worker killed between the claim and FCM's receipt leaves the delivery
    `sending`: whoever runs the job next must not send it (it may be at FCM) and the log
    says `unknown`, not that no device took it."""
    from domain.usecases.notifications import deliver
    from infra.db import session_scope
    from infra.models import Delivery, Notification
    from infra.notifications import SqlPushDeliveries

    fcm = _fcm(settings)
    token = f"claimed-{uuid.uuid4()}"
    _user, note_id = _note_for(token)
    with session_scope() as session:
        session.add(Delivery(notification_id=note_id, token=token, status="sending", attempts=1))
    assert deliver(SqlPushDeliveries(), note_id) is None
    assert [s for s in _sent(fcm) if s["message"].get("token") == token] == []
    with session_scope() as session:
        note = session.get(Notification, note_id)
        assert note is not None
        assert (note.status, note.error) == (
            "unknown",
            "the sender stopped while sending: maybe delivered, not sent again",
        )
