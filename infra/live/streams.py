"""Appending an event to a live stream: XADD and PUBLISH in one script, so the SSE id is
the stream id and nothing is published that a resuming client could not read back."""

from __future__ import annotations

import json
from typing import Any

import redis
import redis.asyncio as aioredis

from infra.live.keys import maxlen_of
from infra.live.scripts import lua_script


class Streams:
    def __init__(self, client: redis.Redis) -> None:
        self._emit = client.register_script(lua_script("emit"))

    def emit(self, stream: str, event: str, data: dict[str, Any]) -> str:
        ids = self._emit(keys=[stream], args=[event, maxlen_of(stream), json.dumps(data)])
        return str(ids[0])


class StreamsAsync:
    def __init__(self, client: aioredis.Redis) -> None:
        self._emit = client.register_script(lua_script("emit"))

    async def emit(self, stream: str, event: str, data: dict[str, Any]) -> str:
        args: list[Any] = [event, maxlen_of(stream), json.dumps(data)]
        return str((await self._emit(keys=[stream], args=args))[0])
