"""Drivers' positions and state in Redis: the ping hot path (one script call per
request, concurrent requests pipelined), online/offline, nearby search, the tracking
apps' device keys, and the sweep of drivers gone silent."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from domain.pings import Ping, PingRules
from domain.rides import DRIVER_ACTIVE
from infra.live.keys import ADMIN_MAXLEN, PATH_MAX, STREAM_MAXLEN, UUID_KEEP, Keys, iso
from infra.live.scripts import lua_script


@dataclass(frozen=True, slots=True)
class ApplyResult:
    rate_limited_for: int  # seconds to wait, 0 when not limited
    codes: list[str]
    status: str
    ride_id: str
    ride_status: str
    event_id: str


def _fmt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def geo_query(lat: float, lng: float, radius_m: float, count: int) -> dict[str, Any]:
    return {
        "name": Keys.GEO,
        "longitude": lng,
        "latitude": lat,
        "radius": radius_m,
        "unit": "m",
        "sort": "ASC",
        "count": count,
        "withdist": True,
    }


class PositionsAsync:
    """The API's side: pings applied, state and positions read, drivers found."""

    def __init__(self, client: aioredis.Redis) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express
        self.r: Any = client
        self._apply = client.register_script(lua_script("apply_pings"))
        # pings of concurrent requests share one pipelined round trip (see _run_batch)
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def apply_pings(
        self,
        driver_id: str,
        pings: list[Ping],
        rules: PingRules,
        *,
        rate_limit: int,
        rate_window_s: int,
        now: float | None = None,
    ) -> ApplyResult:
        now = time.time() if now is None else now
        ordered = sorted(pings, key=lambda p: p.recorded_at)
        argv: list[Any] = [
            driver_id,
            rules.max_speed_ms,
            rules.jump_slack_m,
            rate_limit,
            rate_window_s,
            STREAM_MAXLEN,
            ADMIN_MAXLEN,
            PATH_MAX,
            UUID_KEEP,
            ""
            if all(p.valid for p in ordered)
            else "".join("1" if p.valid else "0" for p in ordered),
        ]
        for p in ordered:
            argv += [
                repr(p.lat),
                repr(p.lng),
                repr(p.recorded_at),
                _fmt(p.heading),
                _fmt(p.speed),
                _fmt(p.accuracy),
                p.uuid or "",
                iso(p.recorded_at),
            ]
        window = int(now) // rate_window_s
        keys = [
            Keys.of(Keys.POSITION, driver_id),
            Keys.of(Keys.DRIVER_STATE, driver_id),
            Keys.of(Keys.UUIDS, driver_id),
            Keys.GEO,
            Keys.SEEN,
            Keys.rate(driver_id, window),
            Keys.ADMIN_EVENTS,
        ]
        out = await self._call_apply(keys + argv, len(keys))
        if out[0] == "rate_limited":
            return ApplyResult(max(1, int(out[1])), [], "", "", "", "")
        _ok, status, ride_id, ride_status, event_id, *codes = out
        # codes are in time order; map them back to the caller's order
        by_ping = dict(zip(map(id, ordered), codes, strict=True))
        return ApplyResult(
            0, [by_ping[id(p)] for p in pings], status, ride_id, ride_status, event_id
        )

    async def _call_apply(self, keys_and_args: list[Any], nkeys: int) -> Any:
        """Queue one script call; calls queued in the same loop turn go out together.

        Under load most of a ping request's cost is the Redis client's per-call work
        (connection checkout, a write and a read, parsing); one pipeline for all the
        requests that are ready at once pays it once. Each call stays its own atomic
        script run, and its answer goes back to its own request.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append(([nkeys, *keys_and_args], future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._start_batch)
        return await future

    def _start_batch(self) -> None:
        batch, self._pending = self._pending, []
        self._flushing = False
        task = asyncio.ensure_future(self._run_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._pipeline(batch)
        except Exception as exc:  # the whole round trip failed: every caller hears it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _pipeline(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> list[Any]:
        results: list[Any] = []
        for attempt in (1, 2):
            pipe = self.r.pipeline(transaction=False)
            for call, _ in batch:
                pipe.evalsha(self._apply.sha, *call)
            results = list(await pipe.execute(raise_on_error=False))
            if attempt == 1 and any(isinstance(r, NoScriptError) for r in results):
                await self.r.script_load(lua_script("apply_pings"))  # a restarted or flushed Redis
                continue
            break
        return results

    async def driver_state(self, driver_id: str) -> dict[str, str]:
        return await self.r.hgetall(Keys.of(Keys.DRIVER_STATE, driver_id))

    async def position(self, driver_id: str) -> dict[str, str]:
        return await self.r.hgetall(Keys.of(Keys.POSITION, driver_id))

    async def set_driver_status(self, driver_id: str, online: bool) -> dict[str, str]:
        """Online or offline; an offline driver leaves nearby search at once. Returns the
        driver's state as it was (the caller refuses going offline during a ride)."""
        key = Keys.of(Keys.DRIVER_STATE, driver_id)
        state = await self.r.hgetall(key)
        if not online and state.get("ride_status") in DRIVER_ACTIVE:
            return state
        pipe = self.r.pipeline()
        pipe.hset(key, "status", "online" if online else "offline")
        if not online:
            pipe.zrem(Keys.GEO, driver_id)
            pipe.zrem(Keys.SEEN, driver_id)
        await pipe.execute()
        return state

    async def nearby(
        self, lat: float, lng: float, radius_m: float, count: int
    ) -> list[tuple[str, float, dict[str, str], str | None, str | None]]:
        """Drivers in the GEO set by distance: (id, metres, position, status, ride id)."""
        found = await self.r.geosearch(**geo_query(lat, lng, radius_m, count))
        if not found:
            return []
        pipe = self.r.pipeline()
        for driver_id, _dist in found:
            pipe.hgetall(Keys.of(Keys.POSITION, driver_id))
            pipe.hmget(Keys.of(Keys.DRIVER_STATE, driver_id), "status", "ride_id")
        rows = await pipe.execute()
        return [
            (d, float(dist), rows[2 * n], rows[2 * n + 1][0], rows[2 * n + 1][1])
            for n, (d, dist) in enumerate(found)
        ]

    async def driver_of_device_key(self, key_hash: str) -> str | None:
        found = await self.r.get(Keys.of(Keys.DEVICE_KEY, key_hash))
        return str(found) if found is not None else None


class Positions:
    """The workers' side: device keys, last fixes, the stale sweep."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client

    def set_device_key(self, key_hash: str, driver_id: str, old_hash: str | None) -> None:
        pipe = self.r.pipeline()
        if old_hash:
            pipe.delete(Keys.of(Keys.DEVICE_KEY, old_hash))
        pipe.set(Keys.of(Keys.DEVICE_KEY, key_hash), driver_id)
        pipe.execute()

    def last_seen(self, driver_id: str) -> float | None:
        """When the driver's last accepted fix was taken (Unix seconds), if Redis has it."""
        ts = self.r.hget(Keys.of(Keys.POSITION, driver_id), "ts")
        return float(ts) if ts else None

    def sweep_stale(self, older_than: float) -> int:
        stale: list[str] = self.r.zrangebyscore(Keys.SEEN, "-inf", older_than)
        if not stale:
            return 0
        pipe = self.r.pipeline()
        pipe.zrem(Keys.GEO, *stale)
        pipe.zrem(Keys.SEEN, *stale)
        pipe.execute()
        return len(stale)
