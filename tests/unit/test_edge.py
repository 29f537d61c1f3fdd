"""The outermost middleware's answers when the app below it fails: a client that went away
is no server error, and a broker out of reach is an outage to retry like any other."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import kombu.exceptions
from starlette.requests import ClientDisconnect

from api.middleware import Edge


def _call(error: BaseException) -> tuple[int, dict[str, Any]]:
    async def app(_scope: Any, _receive: Any, _send: Any) -> None:
        raise error

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/webhooks/stripe", "headers": []}
    asyncio.run(Edge(app, max_bytes=1024)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)


def test_a_client_gone_mid_body_is_not_a_server_error() -> None:
    status, body = _call(ClientDisconnect())
    assert (status, body["code"]) == (400, "client_disconnected")


def test_the_broker_out_of_reach_is_an_outage_to_retry() -> None:
    status, body = _call(kombu.exceptions.OperationalError("Error 111 connecting"))
    assert (status, body["code"]) == (503, "unavailable")


def test_anything_else_is_a_500_in_the_one_error_shape() -> None:
    status, body = _call(RuntimeError("bug"))
    assert (status, body["code"]) == (500, "internal_error")
