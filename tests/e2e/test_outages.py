"""Redis gone for a moment: the API answers 503 with Retry-After (never a 500), and takes
the same ping once Redis is back. (PostgreSQL stopped is the chaos run's.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devtools import launcher
from tests.factories import PASSWORD
from tests.services import free_port, running_api


def test_an_outage_of_redis_is_a_503_to_try_again(db: None, tmp_path: Path) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = launcher.start_redis(port, data_dir=tmp_path, persist=True)
    try:
        with running_api({"RIDEHAIL_REDIS_URL": url, "RIDEHAIL_BROKER_URL": url}) as api:
            email = "outage-driver@example.com"
            body = {"email": email, "password": PASSWORD, "name": "Dee", "role": "driver"}
            httpx.post(f"{api}/api/v1/auth/register", json=body).raise_for_status()
            token = httpx.post(
                f"{api}/api/v1/auth/token", data={"username": email, "password": PASSWORD}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            now = datetime.now(UTC).isoformat()
            ping = {"lat": 52.52, "lng": 13.405, "recorded_at": now}
            online = httpx.post(
                f"{api}/api/v1/drivers/me/status", json={"status": "online"}, headers=auth
            )
            assert online.status_code == 200, online.text

            launcher.stop(server)
            down = httpx.post(f"{api}/api/v1/drivers/me/location", json=ping, headers=auth)
            assert down.status_code == 503, down.text
            assert down.json()["code"] == "unavailable"
            assert down.headers["retry-after"] == "1"
            near = httpx.get(
                f"{api}/api/v1/drivers/nearby",
                params={"lat": 52.52, "lng": 13.405},
                headers=auth,
            )
            assert near.status_code in (403, 503), near.text  # a driver: 403 comes first
            # a stream opened meanwhile ends cleanly (the client comes back), never a reset
            stream = httpx.get(f"{api}/api/v1/drivers/me/events", headers=auth, timeout=10)
            assert stream.status_code in (200, 503), stream.text
            if stream.status_code == 200:
                assert stream.text.startswith("retry: 2000")

            server = launcher.start_redis(port, data_dir=tmp_path, persist=True)
            again = httpx.post(f"{api}/api/v1/drivers/me/location", json=ping, headers=auth)
            assert again.status_code in (200, 202), again.text
            assert again.json()["accepted"] == 1
    finally:
        launcher.stop(server)


def test_a_push_in_flight_when_the_broker_drops_is_finished_and_recorded(
    db: None, tmp_path: Path, settings: Any
) -> None:
    """A push worker whose broker connection drops while FCM holds its send lets that
    delivery finish: the push is recorded `sent`, once, and the copy of the job the broker
    hands out again sends nothing. (Terminated instead, the delivery would stay claimed and
    the push would count as maybe lost.)"""
    import os
    import uuid

    from celery import Celery
    from sqlalchemy import text

    from infra.db import get_engine
    from infra.routing import PUSH_QUEUES
    from tests.wait import until
    from tests.workers.test_notifications import _note_for

    fcm = settings.fcm_endpoint
    httpx.delete(f"{fcm}/_faults")
    token = f"in-flight-{uuid.uuid4()}"
    _user, note_id = _note_for(token)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = launcher.start_redis(port, data_dir=tmp_path, persist=True)
    env = {**os.environ, "RIDEHAIL_REDIS_URL": url, "RIDEHAIL_BROKER_URL": url}
    worker = launcher.start_worker(
        queues=",".join(PUSH_QUEUES),
        concurrency=1,
        name="push-outage@%h",
        env=env,
        log=tmp_path / "worker.log",
    )
    sender = Celery(broker=url)
    try:
        label = f"held-{token}"
        fault = {"delay_s": 4, "count": 1, "token": token, "label": label}
        httpx.post(f"{fcm}/_faults", json=fault).raise_for_status()
        sender.send_task(
            "notifications.deliver",
            kwargs={"notification_id": str(note_id)},
            queue=PUSH_QUEUES[0],
        )

        def served() -> bool:
            faults = httpx.get(f"{fcm}/_faults/served").json()
            return any(f.get("label") == label for f in faults)

        until(served, timeout=60)  # FCM holds the send: the worker waits for the answer
        launcher.stop(server)  # the broker goes away under the running delivery
        server = launcher.start_redis(port, data_dir=tmp_path, persist=True)

        def delivery() -> tuple[str, int]:
            with get_engine().connect() as conn:
                row = conn.execute(
                    text("SELECT status, attempts FROM deliveries WHERE notification_id = :n"),
                    {"n": note_id},
                ).one()
            return str(row[0]), int(row[1])

        until(lambda: delivery()[0] != "sending", timeout=30)
        assert delivery() == ("sent", 1)
        time.sleep(3)  # the job handed out again has had its turn
        with get_engine().connect() as conn:
            status = conn.execute(
                text("SELECT status FROM notifications WHERE id = :n"), {"n": note_id}
            ).scalar_one()
        assert status == "sent"
        sent = [
            s for s in httpx.get(f"{fcm}/_requests").json() if s["message"].get("token") == token
        ]
        assert len(sent) == 1
    finally:
        httpx.delete(f"{fcm}/_faults")
        launcher.stop(worker)
        launcher.stop(server)
