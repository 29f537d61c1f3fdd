"""Metrics: what the API counts, what it reads at scrape time, and where it is served
(`ridehail metrics` on an internal port, never the public API)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from infra.metrics import serve
from infra.redis import get_broker_redis
from tests.api.test_location import native, online
from tests.factories import register
from tests.services import free_port
from tests.wait import until


@pytest.fixture(scope="module")
def scrape_url() -> str:
    """`ridehail metrics`'s server, in this process (where the test client's app counts)."""
    port = free_port()
    threading.Thread(target=serve, args=("127.0.0.1", port), daemon=True).start()
    url = f"http://127.0.0.1:{port}/metrics"
    until(lambda: _up(url), timeout=10)
    return url


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_public_api_does_not_serve_metrics(client: TestClient, scrape_url: str) -> None:
    assert client.get("/metrics").status_code == 404
    assert httpx.get(scrape_url.replace("/metrics", "/other")).status_code == 404
    assert "ridehail_http_requests_total" in httpx.get(scrape_url).text


def test_pings_are_counted_by_outcome_and_reason(client: TestClient, scrape_url: str) -> None:
    d = register(client, "driver")
    online(client, d)
    before = httpx.get(scrape_url).text
    now = time.time()
    client.post("/api/v1/drivers/me/location", json=native(now), headers=d.headers)
    client.post("/api/v1/drivers/me/location", json=native(now, lat=91), headers=d.headers)
    after = httpx.get(scrape_url).text
    accepted = 'ridehail_pings_total{outcome="accepted",reason=""}'
    rejected = 'ridehail_pings_total{outcome="rejected",reason="lat_out_of_range"}'
    assert _value(after, accepted) == _value(before, accepted) + 1
    assert _value(after, rejected) == _value(before, rejected) + 1
    route = 'ridehail_http_requests_total{method="POST",route="/api/v1/drivers/me/location"'
    assert route in after


def test_queue_depths_are_read_from_the_broker_at_scrape_time(
    scrape_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.metrics

    monkeypatch.setattr(infra.metrics, "QUEUES", ("test-unconsumed",))
    r = get_broker_redis()  # the broker's Redis (a database of its own here), not live state's
    r.delete("test-unconsumed")
    r.lpush("test-unconsumed", "a", "b", "c")
    try:
        text = httpx.get(scrape_url).text
    finally:
        r.delete("test-unconsumed")
    assert _value(text, 'ridehail_queue_depth{queue="test-unconsumed"}') == 3.0
    assert "ridehail_payments" in text
