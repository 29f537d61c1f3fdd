"""A small SSE client for tests: reads events from a real HTTP stream in a thread."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Sse:
    id: str | None
    event: str
    data: Any


@dataclass
class SseClient:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    events: queue.Queue[Sse | None] = field(default_factory=queue.Queue)
    comments: list[str] = field(default_factory=list)
    status: int | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)

    def start(self) -> SseClient:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.opened.wait(10), "the stream did not open"
        return self

    def _run(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=30) as r:
                self.status = r.status_code
                self.opened.set()
                if r.status_code != 200:
                    return
                ev: dict[str, Any] = {}
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line == "":
                        if "data" in ev:
                            self.events.put(
                                Sse(
                                    ev.get("id"), ev.get("event", "message"), json.loads(ev["data"])
                                )
                            )
                        ev = {}
                    else:
                        name, _, value = line.partition(":")
                        ev[name] = value[1:] if value.startswith(" ") else value
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()
            self.events.put(None)

    def next(self, timeout: float = 10.0, kind: str | None = None) -> Sse:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind or 'event'} within {timeout}s")
            item = self.events.get(timeout=left)
            if item is None:
                raise AssertionError("the stream ended")
            if kind is None or item.event == kind:
                return item
