"""Fan-out of Redis stream events to the SSE clients of one API process.

One pub/sub connection per process (per shard, on a cluster), subscribed to the
sharded channels its clients follow (SSUBSCRIBE: a stream's channel lives on the
stream's own shard, so a cluster's pub/sub load spreads with its keys); each client
has a bounded queue. Pub/sub delivers at most once (a subscription not yet active, a
shard failing over): each message names the stream's entry before it, so a client that
did not see that one reads what it missed from the stream (`api.routers.streams`). A
client whose queue is full is dropped (its stream ends) rather than allowed to grow
memory: it reconnects with `Last-Event-ID` and reads what it missed from the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from infra.live.keys import SEP, channel, stream_of_channel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    event: str
    data: str
    prev: str = ""  # live events: the stream's entry before this one ('0-0' if none)


def id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Subscriber:
    stream: str
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(256))
    dropped: bool = False


class EventHub:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.subs: dict[str, set[Subscriber]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.pubsub.aclose()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self.subs.values())

    async def subscribe(self, stream: str) -> Subscriber:
        sub = Subscriber(stream)
        async with self._lock:
            first = not self.subs[stream]
            self.subs[stream].add(sub)
            if first:
                await self.pubsub.ssubscribe(channel(stream))
                self._ready.set()
        return sub

    async def unsubscribe(self, sub: Subscriber) -> None:
        async with self._lock:
            subs = self.subs.get(sub.stream)
            if subs is None:
                return
            subs.discard(sub)
            if not subs:
                del self.subs[sub.stream]
                with contextlib.suppress(Exception):
                    await self.pubsub.sunsubscribe(channel(sub.stream))

    def _deliver(self, stream: str, event: Event) -> None:
        for sub in list(self.subs.get(stream, ())):
            if sub.dropped:
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # a slow consumer: end its stream instead of buffering without bound
                sub.dropped = True
                with contextlib.suppress(asyncio.QueueEmpty):
                    sub.queue.get_nowait()
                sub.queue.put_nowait(None)

    async def _run(self) -> None:
        while True:
            try:
                await self._ready.wait()
                message = await self.pubsub.get_sharded_message(timeout=1.0)
                if message is None or message.get("type") != "smessage":
                    if not self.subs:
                        self._ready.clear()
                    continue
                chan = message["channel"]
                stream = stream_of_channel(chan)
                raw = message["data"]
                event_id, prev, name, data = raw.split(SEP, 3)
                self._deliver(stream, Event(event_id, name, data, prev))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event hub: reader failed; retrying")
                await asyncio.sleep(0.5)
                # wake every client: they resume from the stream with Last-Event-ID
                for subs in self.subs.values():
                    for sub in subs:
                        sub.dropped = True
                        with contextlib.suppress(asyncio.QueueFull):
                            sub.queue.put_nowait(None)


async def read_after(client: Any, stream: str, after: str | None, page: int = 500) -> list[Event]:
    """Every event stored after `after` (exclusive), or all of them, in order.

    Read page by page to the end: `MAXLEN ~` trims loosely, so a stream can hold
    more than its nominal length."""
    out: list[Event] = []
    start = "-" if not after else f"({after}"
    while True:
        entries = await client.xrange(stream, min=start, max="+", count=page)
        out += [Event(i, f.get("e", "message"), f.get("d", "{}")) for i, f in entries]
        if len(entries) < page:
            return out
        start = f"({entries[-1][0]}"
