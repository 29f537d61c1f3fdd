"""/metrics: what the API counts, and what it reads at scrape time."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from infra.redis import get_sync_redis
from tests.api.test_location import native, online
from tests.factories import register


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_pings_are_counted_by_outcome_and_reason(client: TestClient) -> None:
    d = register(client, "driver")
    online(client, d)
    before = client.get("/metrics").text
    now = time.time()
    client.post("/api/v1/drivers/me/location", json=native(now), headers=d.headers)
    client.post("/api/v1/drivers/me/location", json=native(now, lat=91), headers=d.headers)
    after = client.get("/metrics").text
    accepted = 'ridehail_pings_total{outcome="accepted",reason=""}'
    rejected = 'ridehail_pings_total{outcome="rejected",reason="lat_out_of_range"}'
    assert _value(after, accepted) == _value(before, accepted) + 1
    assert _value(after, rejected) == _value(before, rejected) + 1
    route = 'ridehail_http_requests_total{method="POST",route="/api/v1/drivers/me/location"'
    assert route in after


def test_queue_depths_are_read_from_the_broker_at_scrape_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.metrics

    monkeypatch.setattr(infra.metrics, "QUEUES", ("test-unconsumed",))
    r = get_sync_redis()
    r.delete("test-unconsumed")
    r.lpush("test-unconsumed", "a", "b", "c")
    try:
        text = client.get("/metrics").text
    finally:
        r.delete("test-unconsumed")
    assert _value(text, 'ridehail_queue_depth{queue="test-unconsumed"}') == 3.0
    assert "ridehail_payments" in text
