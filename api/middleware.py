"""Pure ASGI middleware: body size cap (413), JSON-only bodies (415), request metrics."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("ridehail_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "ridehail_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

# endpoints whose bodies are forms or foreign formats, not JSON
FORM_PATHS = ("/api/v1/auth/token", "/api/v1/osmand", "/api/v1/webhooks/")


async def _send_error(send: Send, status: int, detail: str, code: str) -> None:
    body = json.dumps({"detail": detail, "code": code}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_WANTED = frozenset({b"content-length", b"content-type", b"transfer-encoding"})


class _TooLarge(Exception):
    pass


class HttpMiddleware:
    """A pure ASGI middleware that acts on HTTP requests only (`handle`); anything else
    (lifespan) passes straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ResponseTracker:
    """Wraps an ASGI `send` to know whether the response has started (after which an
    error can no longer be answered with an error response)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
        await self._send(message)


class BodyGuard(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
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
                await _send_error(send, 400, "invalid Content-Length", "bad_request")
                return
            if declared > self.max_bytes:
                await _send_error(
                    send, 413, f"body larger than {self.max_bytes} bytes", "payload_too_large"
                )
                return
        path: str = scope["path"]
        has_body = length not in (None, "0") or "transfer-encoding" in headers
        if has_body and not path.startswith(FORM_PATHS):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json" and not ctype.endswith("+json"):
                await _send_error(
                    send,
                    415,
                    "send JSON with Content-Type: application/json",
                    "unsupported_media_type",
                )
                return

        received = 0
        tracker = ResponseTracker(send)

        async def guarded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, guarded_receive, tracker)
        except _TooLarge:
            if not tracker.started:
                await _send_error(
                    send, 413, f"body larger than {self.max_bytes} bytes", "payload_too_large"
                )


class Metrics(HttpMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        tracker = ResponseTracker(send)
        try:
            await self.app(scope, receive, tracker)
        finally:
            route: Any = scope.get("route")
            name = getattr(route, "path", "unmatched")
            LATENCY.labels(scope["method"], name).observe(time.perf_counter() - start)
            REQUESTS.labels(scope["method"], name, str(tracker.status)).inc()
