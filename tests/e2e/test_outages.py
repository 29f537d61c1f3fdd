"""Redis gone for a moment: the API answers 503 with Retry-After (never a 500), and takes
the same ping once Redis is back. (PostgreSQL stopped is the chaos run's.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

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
