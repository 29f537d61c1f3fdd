"""Drivers' positions and state in Redis: the ping hot path (one script call per
request, concurrent requests pipelined), online/offline, nearby search, the tracking
apps' device keys, and the sweep of drivers gone silent."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from domain.geo import Point, cells_around, haversine_m
from domain.pings import Ping, PingRules
from domain.rides import DRIVER_ACTIVE
from infra.live.keys import (
    ADMIN_MAXLEN,
    ADMIN_STREAM,
    PATH_MAX,
    RIDE_FACTS_TTL_S,
    SEP,
    STREAM_MAXLEN,
    UUID_KEEP,
    Keys,
    iso,
    ride_stream,
)
from infra.live.scripts import lua_script
from infra.outages import OUTAGES

log = logging.getLogger(__name__)


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


def geo_query(
    cell: str, lat: float, lng: float, radius_m: float, count: int, *, coords: bool = False
) -> dict[str, Any]:
    return {
        "withcoord": coords,
        "name": Keys.of(Keys.GEO, cell),
        "longitude": lng,
        "latitude": lat,
        "radius": radius_m,
        "unit": "m",
        "sort": "ASC",
        "count": count,
        "withdist": True,
    }


#: how long a shard whose replica did not answer a WAIT is not waited on again
NO_REPLICA_S = 5.0

#: the first radius a search looks within, widened threefold until it has what it needs
FIRST_RADIUS_M = 600.0


def search_radii(radius_m: float) -> list[float]:
    """The radii a nearest-first search tries: small first (few cells, few members), the
    caller's last."""
    radii = []
    r = min(FIRST_RADIUS_M, radius_m)
    while r < radius_m:
        radii.append(r)
        r *= 3
    return [*radii, radius_m]


def merge_nearest(replies: list[Any], count: int) -> list[tuple[str, float]]:
    """The `count` nearest of several cells' GEOSEARCH replies."""
    found = [(str(d), float(dist)) for reply in replies for d, dist in reply or ()]
    found.sort(key=lambda row: (row[1], row[0]))
    return found[:count]


Spot = tuple[str, float, float, float]
"""A driver found: id, metres from the point searched, lat, lng (the index's)."""


async def nearest_async(r: Any, lat: float, lng: float, radius_m: float, count: int) -> list[Spot]:
    """The nearest `count` indexed drivers within `radius_m`, nearest first, with where
    the index has them: searched in a small circle first, and wider only while it holds
    fewer than `count` (a search touches the cells it needs and stops at the count it
    needs)."""
    found: list[Spot] = []
    for radius in search_radii(radius_m):
        pipe = r.pipeline(transaction=False)
        for cell in cells_around(lat, lng, radius):
            pipe.geosearch(**geo_query(cell, lat, lng, radius, count, coords=True))
        found = sorted(
            (
                (str(d), float(dist), float(where[1]), float(where[0]))
                for reply in await pipe.execute()
                for d, dist, where in reply or ()
            ),
            key=lambda row: (row[1], row[0]),
        )[:count]
        if len(found) >= count:
            break
    return found


def nearest(r: Any, lat: float, lng: float, radius_m: float, count: int) -> list[tuple[str, float]]:
    """`nearest_async` for the workers (the same search, synchronous)."""
    found: list[tuple[str, float]] = []
    for radius in search_radii(radius_m):
        pipe = r.pipeline(transaction=False)
        for cell in cells_around(lat, lng, radius):
            pipe.geosearch(**geo_query(cell, lat, lng, radius, count))
        found = merge_nearest(pipe.execute(), count)
        if len(found) >= count:
            break
    return found


class _Batcher:
    """Commands of concurrent requests queued in the same loop turn go out as one
    pipeline (never a transaction: on a cluster each goes to its own shard).

    Under load most of a ping request's cost is the Redis client's per-call work
    (connection checkout, a write and a read, parsing); one pipeline for all the
    requests that are ready at once pays it once. Each command stays its own atomic
    (script) run, and its answer goes back to its own request.
    """

    def __init__(self, client: Any, scripts: dict[str, str]) -> None:
        self.r = client
        self.scripts = scripts  # sha -> source, to load where a node lacks one
        self._pending: list[tuple[list[tuple[Any, ...]], asyncio.Future[list[Any]]]] = []
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, *command: Any) -> Any:
        (result,) = await self.call_many([command])
        if isinstance(result, Exception):
            raise result
        return result

    async def call_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Several commands in the next round trip; their answers (an error as the
        exception, not raised) in order."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((commands, future))
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

    async def _run_batch(
        self, batch: list[tuple[list[tuple[Any, ...]], asyncio.Future[list[Any]]]]
    ) -> None:
        try:
            results = await self._pipeline([c for commands, _ in batch for c in commands])
        except Exception as exc:  # the whole round trip failed: every caller hears it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        at = 0
        for commands, future in batch:
            mine, at = results[at : at + len(commands)], at + len(commands)
            if not future.done():
                future.set_result(mine)

    async def _pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        pipe = self.r.pipeline(transaction=False)
        for command in commands:
            if command and isinstance(command[-1], dict):  # routing options: target_nodes
                pipe.execute_command(*command[:-1], **command[-1])
            else:
                pipe.execute_command(*command)
        results = list(await pipe.execute(raise_on_error=False))
        missing = [n for n, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # a restarted, flushed or newly promoted Redis: load, run those again
            for sha in {commands[n][1] for n in missing}:
                await self.r.script_load(self.scripts[sha])
            again = self.r.pipeline(transaction=False)
            for n in missing:
                again.execute_command(*commands[n])
            for n, result in zip(missing, await again.execute(raise_on_error=False), strict=True):
                results[n] = result
        return results


NearbyRows = list[Spot]


class NearbyAnswers:
    """One search answers every caller asking about the same place within `ttl_s`: the
    place is the point rounded to a grid of `grid_deg` (about 110 m), `slack_m` (the
    grid's half-diagonal) at most from any caller. The search takes in every driver a
    caller's own nearest `count` within its radius can be (`PositionsAsync._nearby`), and
    each caller's distances are computed from its own point. A search in flight is
    shared, not repeated. Positions move every few seconds: a second's reuse shows
    nothing staler than a ping's own interval."""

    def __init__(
        self,
        ttl_s: float = 1.0,
        grid_deg: float = 0.001,
        size: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.grid_deg = grid_deg
        self.slack_m = math.hypot(grid_deg / 2, grid_deg / 2) * 111_320.0
        self.size = size
        self._answers: dict[
            tuple[int, int, float, int], tuple[float, asyncio.Future[NearbyRows]]
        ] = {}
        self.searches = 0  # how many searches reached Redis (for the bench)

    async def get(
        self,
        lat: float,
        lng: float,
        radius_m: float,
        count: int,
        search: Callable[[float, float, float, int, float], Awaitable[NearbyRows]],
    ) -> NearbyRows:
        key = (round(lat / self.grid_deg), round(lng / self.grid_deg), radius_m, count)
        now = self.clock()
        known = self._answers.get(key)
        if known is None or known[0] <= now or (known[1].done() and known[1].exception()):
            if len(self._answers) >= self.size:
                self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
            glat, glng = key[0] * self.grid_deg, key[1] * self.grid_deg
            task = asyncio.ensure_future(search(glat, glng, radius_m, count, self.slack_m))
            known = (now + self.ttl_s, task)
            self._answers[key] = known
            self.searches += 1
        return await asyncio.shield(known[1])


class PositionsAsync:
    """The API's side: pings applied, state and positions read, drivers found."""

    def __init__(self, client: aioredis.Redis, *, wait: tuple[int, int] = (0, 0)) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express
        self.r: Any = client
        # (replicas, ms): a trip's fixes are answered once that many replicas have them (a
        # cluster's client only: WAIT goes to the driver's shard)
        self.wait_replicas, self.wait_ms = wait if hasattr(client, "get_node_from_key") else (0, 0)
        self.unreplicated = 0  # trip answers given before a replica had them
        # a shard whose WAIT timed out (no replica: one just promoted) is not waited on
        # again for a while: one wait per `NO_REPLICA_S`, not one per ping batched with it
        self._no_replica_until: dict[str, float] = {}
        self.no_replica_s = NO_REPLICA_S
        self._apply = client.register_script(lua_script("apply_pings"))
        self._emit = client.register_script(lua_script("emit"))
        self._place = client.register_script(lua_script("place"))
        self._emit_fixes = client.register_script(lua_script("emit_fixes"))
        self._answers = NearbyAnswers()
        # commands of concurrent requests share one pipelined round trip
        self._batch = _Batcher(
            client,
            {
                script.sha: lua_script(name)
                for name, script in (
                    ("apply_pings", self._apply),
                    ("emit", self._emit),
                    ("place", self._place),
                    ("emit_fixes", self._emit_fixes),
                )
            },
        )

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
        """Two steps: the driver's script (its slot: the fixes judged and made durable,
        the position, the trip's path), then in one pipelined round trip what lives on
        other slots: the cell's search index, the ride's stream, the admin stream. A fix
        the first step accepted is kept whatever happens to the second. A failed write
        to the index or the admin stream is logged (the next fix indexes the driver
        again); the ride's stream out of reach is an outage (503): the app sends the
        fixes again, and the resend, a duplicate, is published then, once."""
        now = time.time() if now is None else now
        ordered = sorted(pings, key=lambda p: p.recorded_at)
        argv: list[Any] = [
            driver_id,
            rules.max_speed_ms,
            rules.jump_slack_m,
            rate_limit,
            rate_window_s,
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
            Keys.rate(driver_id, window),
        ]
        out = await self._batch.call("EVALSHA", self._apply.sha, len(keys), *keys, *argv)
        if out[0] == "rate_limited":
            return ApplyResult(max(1, int(out[1])), [], "", "", "", "")
        _ok, status, ride_id, ride_status, old_cell, new_cell, *fix, newest, for_ride = out[:11]
        live_at, codes = int(out[11]), out[12:]
        event_id = await self._spread(
            driver_id, status, ride_id, (old_cell, new_cell), fix, newest, for_ride, live_at
        )
        # codes are in time order; map them back to the caller's order
        by_ping = dict(zip(map(id, ordered), codes, strict=True))
        return ApplyResult(
            0, [by_ping[id(p)] for p in pings], status, ride_id, ride_status, event_id
        )

    async def _spread(
        self,
        driver_id: str,
        status: str,
        ride_id: str,
        cells: tuple[str, str],
        fix: list[str],
        newest: str,
        for_ride: str,
        live_at: int,
    ) -> str:
        """The second step: the writes on other slots, concurrently. Returns the ride
        stream's id of the fix that became the position ('' if none)."""
        old_cell, new_cell = cells
        lat, lng, ts = fix
        commands: list[tuple[Any, ...]] = []
        if new_cell and status == "online":
            cell_keys = (Keys.of(Keys.GEO, new_cell), Keys.of(Keys.SEEN, new_cell))
            commands.append(("EVALSHA", self._place.sha, 2, *cell_keys, lng, lat, driver_id, ts))
        if new_cell and old_cell != new_cell:
            commands.append(("SADD", Keys.CELLS, new_cell))
            if old_cell:
                commands += [
                    ("ZREM", Keys.of(Keys.GEO, old_cell), driver_id),
                    ("ZREM", Keys.of(Keys.SEEN, old_cell), driver_id),
                ]
        if newest:
            commands.append(
                ("EVALSHA", self._emit.sha, 1, ADMIN_STREAM, "location", ADMIN_MAXLEN, newest)
            )
        fixes = [f.split(SEP, 1) for f in for_ride.split("\x1e")] if for_ride else []
        fenced = bool(fixes) and self.wait_replicas > 0
        node: Any = None
        if fenced:
            # a trip's fixes must outlive a failover: a write on the driver's shard, then
            # WAIT on the same connection, which counts the replicas that have everything
            # the shard wrote before it (the fixes included, written on any connection)
            fence = Keys.of(Keys.FENCE, driver_id)
            node = self.r.get_node_from_key(fence)
            if time.monotonic() < self._no_replica_until.get(node.name, 0.0):
                fenced = False
                self.unreplicated += 1
        if fenced:
            commands += [
                ("SET", fence, ts or "0", "EX", 86400, {"target_nodes": node}),
                ("WAIT", self.wait_replicas, self.wait_ms, {"target_nodes": node}),
            ]
        if fixes:  # last: its answer is the ride stream's ids
            ride_keys = (ride_stream(ride_id), Keys.of(Keys.RIDE_FIXES, ride_id))
            commands.append(
                ("EVALSHA", self._emit_fixes.sha, 2, *ride_keys, STREAM_MAXLEN,
                 RIDE_FACTS_TTL_S, *(part for fix in fixes for part in fix))
            )  # fmt: skip
        if not commands:
            return ""
        try:
            results = await self._batch.call_many(commands)
        except Exception as exc:  # the round trip failed: the fixes are stored all the same
            results = [exc] * len(commands)
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            log.warning(
                "pings of driver %s stored; %d of the writes on other shards failed: %r",
                driver_id, len(failed), failed[0],
            )  # fmt: skip
        if not fixes:
            return ""
        if fenced and not (isinstance(results[-2], int) and results[-2] >= self.wait_replicas):
            self.unreplicated += 1
            self._no_replica_until[node.name] = time.monotonic() + self.no_replica_s
            log.warning(
                "trip fixes on shard %s answered before %d replica(s) had them (%r); "
                "not waited on for %.0f s",
                node.name, self.wait_replicas, results[-2], self.no_replica_s,
            )  # fmt: skip
        if isinstance(results[-1], OUTAGES):
            # the follower has not seen these fixes: the app must send them again (the
            # resend is a duplicate, and a duplicate of a trip's fix is published once)
            raise results[-1]
        if live_at < 0 or isinstance(results[-1], Exception):
            return ""
        return str(results[-1][live_at])

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
        cell = await self.r.hget(Keys.of(Keys.POSITION, driver_id), "cell")
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(key, "status", "online" if online else "offline")
        if not online and cell:
            pipe.zrem(Keys.of(Keys.GEO, cell), driver_id)
            pipe.zrem(Keys.of(Keys.SEEN, cell), driver_id)
        await pipe.execute()
        return state

    async def nearby(
        self, lat: float, lng: float, radius_m: float, count: int
    ) -> list[tuple[str, float]]:
        """The nearest `count` indexed drivers within `radius_m` of (lat, lng): (id,
        metres), nearest first. Searches from many callers in one place within a second
        are answered by one search (`NearbyAnswers`); each caller's distances and order
        are its own, from the positions the index holds."""
        spots = await self._answers.get(lat, lng, radius_m, count, self._spots)
        here = Point(lat, lng)
        out = []
        for driver_id, _dist, dlat, dlng in spots:
            dist = haversine_m(here, Point(dlat, dlng))
            if dist <= radius_m:
                out.append((driver_id, dist))
        out.sort(key=lambda row: (row[1], row[0]))
        return out[:count]

    async def _spots(
        self, lat: float, lng: float, radius_m: float, count: int, slack_m: float
    ) -> list[Spot]:
        """The drivers a caller within `slack_m` of (lat, lng) may need: all those
        within `radius_m + slack_m` when fewer than `count`; else, with r the distance of
        the `count`-th nearest here, those within r + 2 * slack_m (a caller's own nearest
        `count` are within r + slack_m of it, so within r + 2 * slack_m of here), up to
        twice `count` of them."""
        found = await nearest_async(self.r, lat, lng, radius_m + slack_m, count)
        if len(found) >= count and slack_m:
            reach = min(radius_m + slack_m, found[-1][1] + 2 * slack_m)
            found = await nearest_async(self.r, lat, lng, reach, 2 * count)
        return found

    async def describe(
        self, driver_ids: list[str]
    ) -> list[tuple[dict[str, str], str | None, str | None]]:
        """Each driver's position hash, status and ride id, in one round trip."""
        if not driver_ids:
            return []
        pipe = self.r.pipeline(transaction=False)
        for driver_id in driver_ids:
            pipe.hgetall(Keys.of(Keys.POSITION, driver_id))
            pipe.hmget(Keys.of(Keys.DRIVER_STATE, driver_id), "status", "ride_id")
        rows = await pipe.execute()
        return [(rows[2 * n], *rows[2 * n + 1]) for n in range(len(driver_ids))]

    async def driver_of_device_key(self, key_hash: str) -> str | None:
        found = await self.r.get(Keys.of(Keys.DEVICE_KEY, key_hash))
        return str(found) if found is not None else None


class Positions:
    """The workers' side: device keys, last fixes, the stale sweep."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client

    def set_device_key(self, key_hash: str, driver_id: str, old_hash: str | None) -> None:
        pipe = self.r.pipeline(transaction=False)
        if old_hash:
            pipe.delete(Keys.of(Keys.DEVICE_KEY, old_hash))
        pipe.set(Keys.of(Keys.DEVICE_KEY, key_hash), driver_id)
        pipe.execute()

    def last_seen(self, driver_id: str) -> float | None:
        """When the driver's last accepted fix was taken (Unix seconds), if Redis has it."""
        ts = self.r.hget(Keys.of(Keys.POSITION, driver_id), "ts")
        return float(ts) if ts else None

    def cells(self) -> list[str]:
        return sorted(self.r.smembers(Keys.CELLS))

    def online_count(self) -> int:
        """Drivers in the search index, over every cell."""
        pipe = self.r.pipeline(transaction=False)
        for cell in self.cells():
            pipe.zcard(Keys.of(Keys.GEO, cell))
        return sum(pipe.execute())

    def sweep_stale(self, older_than: float) -> int:
        """Drivers not heard from since `older_than` leave the search index, cell by cell."""
        cells = self.cells()
        swept = 0
        pipe = self.r.pipeline(transaction=False)
        for cell, stale in zip(cells, self._stale(cells, older_than), strict=True):
            if stale:
                pipe.zrem(Keys.of(Keys.GEO, cell), *stale)
                pipe.zrem(Keys.of(Keys.SEEN, cell), *stale)
                swept += len(stale)
        if swept:
            pipe.execute()
        return swept

    def _stale(self, cells: list[str], older_than: float) -> list[list[str]]:
        pipe = self.r.pipeline(transaction=False)
        for cell in cells:
            pipe.zrangebyscore(Keys.of(Keys.SEEN, cell), "-inf", older_than)
        return list(pipe.execute())
