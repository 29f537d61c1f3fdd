"""One real API process under what production does to it: a reconnect storm (every
passenger reopening their stream at once) and an error answer on a keep-alive connection."""

from __future__ import annotations

import asyncio
import http.client
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from domain.access import Actor
from infra.live.rides import LiveRides
from infra.redis import get_sync_redis
from infra.security import issue_token
from tests.services import running_api, start_api, stop

STORM = 400


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with running_api({"RIDEHAIL_SSE_KEEPALIVE_S": "30"}) as base:
        yield base


def _ride_in_redis(passenger: uuid.UUID, driver: uuid.UUID) -> str:
    """A ride's facts as the API's commit leaves them in Redis (the storm reads Redis)."""
    ride = SimpleNamespace(
        id=uuid.uuid4(),
        passenger_id=passenger,
        driver_id=driver,
        status="accepted",
        pickup_lat=52.52,
        pickup_lng=13.405,
        dropoff_lat=52.5,
        dropoff_lng=13.45,
        updated_at=datetime.now(UTC),
    )
    LiveRides(get_sync_redis()).ride_changed(ride, None)
    return str(ride.id)


async def _open(http: httpx.AsyncClient, base: str, ride_id: str, token: str) -> int:
    url = f"{base}/api/v1/rides/{ride_id}/events"
    async with http.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status_code == 200:
            async for chunk in r.aiter_text():
                assert chunk.startswith("retry:")
                break
        return r.status_code


def test_a_reconnect_storm_gets_no_5xx(db: None, api: str) -> None:
    """Several hundred passengers open their streams at the same moment, on one process."""
    streams = []
    for _ in range(STORM):
        passenger = uuid.uuid4()
        ride = _ride_in_redis(passenger, uuid.uuid4())
        streams.append((ride, issue_token(passenger, Actor.PASSENGER, "access", 600)))

    async def storm() -> list[int]:
        limits = httpx.Limits(max_connections=STORM, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            return await asyncio.gather(*(_open(http, api, r, t) for r, t in streams))

    statuses = asyncio.run(storm())
    assert statuses == [200] * STORM
    # and a stranger is still told nothing, storm or not
    stranger = issue_token(uuid.uuid4(), Actor.PASSENGER, "access", 600)
    assert (
        httpx.get(
            f"{api}/api/v1/rides/{streams[0][0]}/events",
            headers={"Authorization": f"Bearer {stranger}"},
            timeout=10,
        ).status_code
        == 404
    )


def _register_then_healthz(base: str) -> tuple[http.client.HTTPResponse, dict[str, Any]]:
    """A sign-up that fails, then `/healthz` on the same keep-alive connection, which must
    still be served (the server does not reset it). The failed answer and its body."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    body = json.dumps(
        {"email": "a@example.com", "password": "password1", "name": "A", "role": "passenger"}
    )
    conn.request("POST", "/api/v1/auth/register", body, {"Content-Type": "application/json"})
    first = conn.getresponse()
    answer = json.loads(first.read())
    conn.request("GET", "/healthz")  # the same connection
    second = conn.getresponse()
    assert (second.status, json.loads(second.read())) == (200, {"status": "ok"})
    conn.close()
    return first, answer


def test_an_error_answer_leaves_the_keep_alive_connection_usable(db: None) -> None:
    """A failure below the app (here its database out of reach: a 503 to try again, no
    longer a 500) is answered in the one shape, and the connection goes on serving."""
    proc, base = start_api({"RIDEHAIL_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/x"})
    try:
        first, answer = _register_then_healthz(base)
        assert first.status == 503
        assert answer["code"] == "unavailable"
        assert first.getheader("Retry-After") == "1"
    finally:
        stop(proc)


def test_an_unexpected_error_is_a_500_in_the_one_shape_and_the_connection_lives(
    db: None, services: Any
) -> None:
    """The last boundary: a failure that is no outage and no bad input (here a database
    without our tables: a programming error) is a 500 in the one error shape, logged,
    and the connection goes on serving."""
    from sqlalchemy import create_engine, text

    name = f"empty_{uuid.uuid4().hex[:8]}"
    admin = create_engine(services.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    empty = services.database_url.rsplit("/", 1)[0] + f"/{name}"
    proc, base = start_api({"RIDEHAIL_DATABASE_URL": empty})
    try:
        first, answer = _register_then_healthz(base)
        assert first.status == 500
        assert answer["code"] == "internal_error"
        assert first.getheader("X-Request-ID")
        assert "users" not in json.dumps(answer)  # nothing of the cause leaks out
    finally:
        stop(proc)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
