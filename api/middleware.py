"""The API's one ASGI layer of its own (`Edge`): the error boundary, request metrics, and the
body rules (413 past the size cap, 415 for a body that is not JSON). One layer, because
every layer costs every request, pings included."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.db import reading_only
from infra.logs import request_id, valid_request_id
from infra.metrics import HTTP_LATENCY as LATENCY
from infra.metrics import HTTP_REQUESTS as REQUESTS
from infra.outages import OUTAGES

log = logging.getLogger("api.errors")

# endpoints whose bodies are forms or foreign formats, not JSON
FORM_PATHS = ("/api/v1/auth/token", "/api/v1/osmand", "/api/v1/webhooks/")


async def _send_error(
    send: Send, status: int, detail: str, code: str, extra: dict[str, str] | None = None
) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_WANTED = frozenset({b"content-length", b"content-type", b"transfer-encoding"})


class _TooLarge(Exception):
    pass


class ResponseTracker:
    """Wraps an ASGI `send` to know whether the response has started (after which an
    error can no longer be answered with an error response), and with which status; the
    answer carries the request's id."""

    __slots__ = ("_send", "request_id", "started", "status")

    def __init__(self, send: Send, request_id: bytes) -> None:
        self._send = send
        self.request_id = request_id
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = [
                *message.get("headers", ()),
                (_RID, self.request_id),
                _NOSNIFF,  # no browser takes an answer of ours (JSON, user text) for markup
            ]
        await self._send(message)


_RID = b"x-request-id"
_NOSNIFF = (b"x-content-type-options", b"nosniff")


# Made ids: this process's random prefix and a counter. Unique, not secret, and a
# fraction of uuid4's cost on the hot path (measured: uuid4 was 2 % of a ping's CPU).
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _RID:
            given = valid_request_id(value.decode("latin-1"))
            if given:
                return given
            break
    return f"{_PREFIX}{next(_COUNTER):010x}"


class Edge:
    """Outermost of ours. An unexpected exception becomes a 500 in the one error shape and
    is not raised again: Starlette's own boundary answers and then re-raises, which makes
    the server reset the connection, so a client's next request on that keep-alive
    connection would fail too."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        """Why a body is refused before the app sees it: too large, or not JSON."""
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return None
        # only the three headers this needs (ASGI servers give names in lower case)
        headers: dict[str, str] = {}
        for k, v in scope["headers"]:
            if k in _WANTED:
                headers[k.decode("latin-1")] = v.decode("latin-1")
        length = headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return 400, "invalid Content-Length", "bad_request"
            if declared > self.max_bytes:
                return 413, f"body larger than {self.max_bytes} bytes", "payload_too_large"
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if has_body and not scope["path"].startswith(FORM_PATHS):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and not ctype.endswith("+json"):
                return (
                    415,
                    "send JSON with Content-Type: application/json",
                    ("unsupported_media_type"),
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _request_id(scope)
        request_id.set(rid)  # this request's context: its logs and the tasks it sends
        reading_only.set(scope["method"] in ("GET", "HEAD"))
        tracker = ResponseTracker(send, rid.encode())
        received = 0

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                await _send_error(tracker, *refusal)
                return
            await self.app(scope, guarded_receive, tracker)
        except _TooLarge:
            if not tracker.started:
                await _send_error(
                    tracker, 413, f"body larger than {self.max_bytes} bytes", "payload_too_large"
                )
        except OUTAGES as exc:
            log.warning(
                "%s %s: a service we depend on is unavailable (%s: %s)",
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            if tracker.started:
                raise
            await _send_error(
                tracker,
                503,
                "a service we depend on is briefly unavailable; try again",
                "unavailable",
                {"Retry-After": "1"},
            )
        except ClientDisconnect:
            # the client went away while sending its body: nothing was done, nobody listens
            log.info("%s %s: the client disconnected", scope.get("method"), scope.get("path"))
            if not tracker.started:
                await _send_error(tracker, 400, "the request was cut short", "client_disconnected")
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if tracker.started:  # the answer is under way: nothing better than ending it
                raise
            await _send_error(tracker, 500, "internal error", "internal_error")
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", "unmatched")
            LATENCY.labels(scope["method"], name).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], name, str(tracker.status)).inc()
