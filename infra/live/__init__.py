"""Live state in Redis, one module per feature: `keys` (every key's name), `scripts`
(the Lua in `lua/`), `positions` (pings and drivers), `rides` (what the hot path knows of
a ride), `offers` (dispatch), `streams` (events for SSE). Each has its API-side (async)
and worker-side (sync) adapter; `LiveAsync` is the API process's bundle of the former,
over one client."""

from __future__ import annotations

import redis.asyncio as aioredis

from infra.live.offers import OffersAsync
from infra.live.positions import PositionsAsync
from infra.live.rides import LiveRidesAsync
from infra.live.streams import StreamsAsync


class LiveAsync:
    def __init__(self, client: aioredis.Redis, *, wait: tuple[int, int] = (0, 0)) -> None:
        self.client = client  # for reads of its own (a stream's backlog)
        self.positions = PositionsAsync(client, wait=wait)
        self.rides = LiveRidesAsync(client)
        self.offers = OffersAsync(client)
        self.streams = StreamsAsync(client)
