"""The cost of our one ASGI layer (`api.middleware.Edge`) per request, in-process.

Runs 50,000 requests through `Edge` around a trivial app and prints microseconds per
request. Compare two trees: `PYTHONPATH=<tree> .venv/bin/python bench/edge.py <tree>`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(ROOT))

from api.middleware import Edge  # noqa: E402

N = 50_000


async def _app(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _main() -> None:
    edge = Edge(_app, max_bytes=1000)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/drivers/me/location",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", b"Bearer x"),
            (b"content-length", b"2"),
        ],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    for _ in range(2_000):
        await edge(scope, receive, send)
    start = time.perf_counter()
    for _ in range(N):
        await edge(scope, receive, send)
    took = (time.perf_counter() - start) / N * 1e6
    print(f"{ROOT}: {took:.2f} us per request through Edge ({N:,} requests)")


if __name__ == "__main__":
    asyncio.run(_main())
