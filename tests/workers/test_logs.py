"""Structured logs: JSON lines carrying the request id into the tasks the request caused."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from infra.logs import JsonFormatter
from tests.factories import card_passenger
from tests.wait import until


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_a_requests_id_travels_into_the_tasks_it_caused(client: TestClient, lines: _Lines) -> None:
    p = card_passenger(client)
    r = client.post(
        "/api/v1/rides",
        json={
            "pickup": {"lat": 52.52, "lng": 13.405},
            "dropoff": {"lat": 52.5, "lng": 13.42},
            "payment": "card",
        },
        headers={**p.headers, "X-Request-ID": "req-test-42"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == "req-test-42"
    # the authorization worker's own log line carries it, with its task's name
    found = until(
        lambda: [
            line
            for line in lines.lines
            if line.get("request_id") == "req-test-42" and line.get("task")
        ],
        timeout=20,
    )
    assert {line["task"] for line in found} & {"payments.authorize_ride", "dispatch.advance"}
    assert all(line["level"] in ("info", "warning", "error", "debug") for line in found)
    assert "ts" in found[0]
    assert "msg" in found[0]


def test_every_answer_has_a_request_id_and_a_bad_one_is_replaced(client: TestClient) -> None:
    fresh, again = client.get("/healthz"), client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{22}", fresh.headers["x-request-id"])
    assert again.headers["x-request-id"] != fresh.headers["x-request-id"]
    forged = client.get("/healthz", headers={"X-Request-ID": "bad id;{json}"})
    assert forged.headers["x-request-id"] != "bad id;{json}"
