"""Live state in Redis: driver positions, ride event streams, the keys the hot path reads.

Every key name of live state is defined here, in `Keys`, and nowhere else (the scripts
below are built from the same definitions):
- `drv:{id}:pos`    hash: lat, lng, heading, speed, accuracy, ts (unix s), at (RFC 3339)
- `drv:{id}:state`  hash: status (online|offline), ride_id, ride_status
- `drv:{id}:uuids`  sorted set of the client uuids seen recently (dedupe)
- `drv:{id}:rl:{w}` the driver's ping counter of rate window `w`
- `drv:{id}:events` stream of the driver app's events (offer, offer_withdrawn, ride_status)
- `drv:{id}:offer`  the driver's open offer (JSON, expiring with it); `drv:{id}:offers` counts
- `geo:drivers`     GEO set of online drivers; `drivers:seen` their last ping time
- `ride:{id}:meta`  hash: passenger_id, driver_id, status, pickup/dropoff, v (version)
- `ride:{id}:events` stream of `location` / `status` / `eta` events (MAXLEN ~)
- `ride:{id}:published` hash of the statuses already emitted (each is emitted once)
- `ride:{id}:path`  list of "ts,lat,lng,accuracy" while the trip is in progress (bounded)
- `ride:{id}:eta_gate` at most one ETA event per interval
- `ride:{id}:arriving_told` the passenger was told the driver is about to arrive
- `admin:events`    stream of every status change and driver position
- `devkey:{sha256}` the driver a tracking app's device key belongs to
- `user:{id}:events` stream of what a user must be told of (a payment to fix)
Every stream entry is also PUBLISHed on `ev:<stream>` as "id\\x1fevent\\x1fdata", which is
what each API process's single subscriber fans out to its SSE clients.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from domain.dispatch import Candidate
from domain.geo import EARTH_RADIUS_M
from domain.pings import MAX_GEO_LAT, Ping, PingRules
from domain.rides import DRIVER_ACTIVE, TERMINAL, RideStatus

STREAM_MAXLEN = 1000
ADMIN_MAXLEN = 10000
PATH_MAX = 20000
UUID_KEEP = 2000
SEP = "\x1f"
RIDE_FACTS_TTL_S = 7 * 86400


class Keys:
    """The names of live state's keys. `{}` stands for the driver's or the ride's id."""

    POSITION = "drv:{}:pos"
    DRIVER_STATE = "drv:{}:state"
    UUIDS = "drv:{}:uuids"
    DRIVER_EVENTS = "drv:{}:events"
    DRIVER_OFFER = "drv:{}:offer"
    OFFER_STATS = "drv:{}:offers"
    GEO = "geo:drivers"
    SEEN = "drivers:seen"
    RIDE_META = "ride:{}:meta"
    RIDE_EVENTS = "ride:{}:events"
    RIDE_PUBLISHED = "ride:{}:published"
    RIDE_PATH = "ride:{}:path"
    ETA_GATE = "ride:{}:eta_gate"
    ARRIVING_TOLD = "ride:{}:arriving_told"
    ADMIN_EVENTS = "admin:events"
    DEVICE_KEY = "devkey:{}"
    USER_EVENTS = "user:{}:events"
    CHANNEL = "ev:{}"

    @staticmethod
    def rate(driver_id: str, window: int) -> str:
        return f"drv:{driver_id}:rl:{window}"

    @staticmethod
    def of(template: str, ident: object) -> str:
        return template.replace("{}", str(ident))


ADMIN_STREAM = Keys.ADMIN_EVENTS


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def channel(stream: str) -> str:
    return Keys.of(Keys.CHANNEL, stream)


def stream_of_channel(name: str) -> str:
    """The stream a pub/sub channel carries (the inverse of `channel`)."""
    prefix = Keys.CHANNEL.partition("{}")[0]
    return name[len(prefix) :] if name.startswith(prefix) else name


def user_stream(user_id: object) -> str:
    return Keys.of(Keys.USER_EVENTS, user_id)


def ride_stream(ride_id: str) -> str:
    return Keys.of(Keys.RIDE_EVENTS, ride_id)


def driver_stream(driver_id: str) -> str:
    return Keys.of(Keys.DRIVER_EVENTS, driver_id)


LUA_DIR = Path(__file__).parent / "lua"


def _lua_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_key(name: str, template: str) -> str:
    head, _, tail = template.partition("{}")
    return f"local function {name}(id) return {_lua_str(head)} .. id .. {_lua_str(tail)} end"


def lua_prelude() -> dict[str, str]:
    """The constants a script may name, as Lua: the key names from `Keys` and the
    domain's statuses, so a script spells none of them itself."""
    active = ", ".join(f"[{_lua_str(s)}] = true" for s in sorted(DRIVER_ACTIVE))
    return {
        "CHANNEL_PREFIX": f"local CHANNEL_PREFIX = {_lua_str(Keys.CHANNEL.partition('{}')[0])}",
        "IN_PROGRESS": f"local IN_PROGRESS = {_lua_str(RideStatus.IN_PROGRESS)}",
        "ARRIVED": f"local ARRIVED = {_lua_str(RideStatus.ARRIVED)}",
        "DRIVER_ACTIVE": f"local DRIVER_ACTIVE = {{{active}}}",
        "MAX_GEO_LAT": f"local MAX_GEO_LAT = {MAX_GEO_LAT!r}",
        "EARTH_RADIUS_M": f"local EARTH_RADIUS_M = {EARTH_RADIUS_M!r}",
        "ride_path_key": _lua_key("ride_path_key", Keys.RIDE_PATH),
        "ride_events_key": _lua_key("ride_events_key", Keys.RIDE_EVENTS),
    }


def lua_script(name: str) -> str:
    """`infra/lua/<name>.lua` as Redis runs it: the prelude's constants it names, then
    its own text."""
    body = (LUA_DIR / f"{name}.lua").read_text()
    used = [line for const, line in lua_prelude().items() if re.search(rf"\b{const}\b", body)]
    return "\n".join(used) + "\n" + body


_APPLY = lua_script("apply_pings")
_EMIT = lua_script("emit")
_RIDE_CHANGED = lua_script("ride_changed")


@dataclass(frozen=True, slots=True)
class RideFacts:
    """What the hot path knows of a ride (from `ride:{id}:meta`)."""

    ride_id: str
    passenger_id: str
    driver_id: str | None
    status: str
    pickup: tuple[float, float]
    dropoff: tuple[float, float]

    @classmethod
    def from_hash(cls, h: Mapping[str, str]) -> RideFacts:
        return cls(
            ride_id=h["ride_id"],
            passenger_id=h["passenger_id"],
            driver_id=h.get("driver_id") or None,
            status=h["status"],
            pickup=(float(h["pickup_lat"]), float(h["pickup_lng"])),
            dropoff=(float(h["dropoff_lat"]), float(h["dropoff_lng"])),
        )

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @property
    def driver_active(self) -> bool:
        return self.status in DRIVER_ACTIVE


def ride_facts_fields(ride: Any) -> dict[str, str]:
    """The hash fields of a ride's facts, from anything shaped like a ride row."""
    raw = {
        "ride_id": ride.id,
        "passenger_id": ride.passenger_id,
        "driver_id": ride.driver_id,
        "status": ride.status,
        "pickup_lat": ride.pickup_lat,
        "pickup_lng": ride.pickup_lng,
        "dropoff_lat": ride.dropoff_lat,
        "dropoff_lng": ride.dropoff_lng,
    }
    return {k: "" if v is None else str(v) for k, v in raw.items()}


def ride_version(ride: Any) -> int:
    return int(ride.updated_at.timestamp() * 1_000_000)


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


class LiveAsync:
    """The API's hot path: one script call per ping request."""

    def __init__(self, client: aioredis.Redis) -> None:
        # decode_responses=True: every reply is str, which redis-py's types cannot express
        self.r: Any = client
        self._apply = client.register_script(_APPLY)
        self._emit = client.register_script(_EMIT)
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
                await self.r.script_load(_APPLY)  # a restarted or flushed Redis
                continue
            break
        return results

    async def emit(self, stream: str, event: str, data: dict[str, Any]) -> str:
        maxlen = ADMIN_MAXLEN if stream == ADMIN_STREAM else STREAM_MAXLEN
        return str(await self._emit(keys=[stream], args=[event, json.dumps(data), maxlen]))

    async def driver_state(self, driver_id: str) -> dict[str, str]:
        return await self.r.hgetall(Keys.of(Keys.DRIVER_STATE, driver_id))

    async def position(self, driver_id: str) -> dict[str, str]:
        return await self.r.hgetall(Keys.of(Keys.POSITION, driver_id))

    async def ride_facts(self, ride_id: str) -> RideFacts | None:
        raw = await self.r.hgetall(Keys.of(Keys.RIDE_META, ride_id))
        return RideFacts.from_hash(raw) if raw else None

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
        found = await self.r.geosearch(**_geo_query(lat, lng, radius_m, count))
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

    async def open_offer(self, driver_id: str) -> dict[str, Any] | None:
        raw = await self.r.get(Keys.of(Keys.DRIVER_OFFER, driver_id))
        return json.loads(raw) if raw else None

    async def offer_stats(self, driver_id: str) -> dict[str, int]:
        raw = await self.r.hgetall(Keys.of(Keys.OFFER_STATS, driver_id))
        return {k: int(raw.get(k, 0)) for k in ("offered", "accepted", "declined", "expired")}

    async def driver_of_device_key(self, key_hash: str) -> str | None:
        found = await self.r.get(Keys.of(Keys.DEVICE_KEY, key_hash))
        return str(found) if found is not None else None

    async def first_arriving(self, ride_id: str) -> bool:
        """True the first time only: whether to tell the passenger the driver is close."""
        return bool(await self.r.set(Keys.of(Keys.ARRIVING_TOLD, ride_id), "1", nx=True, ex=86400))

    async def eta_due(self, ride_id: str, interval_s: float) -> bool:
        """True at most once per `interval_s` per ride: whether to emit an ETA now."""
        return bool(
            await self.r.set(
                Keys.of(Keys.ETA_GATE, ride_id), "1", nx=True, px=max(1, int(interval_s * 1000))
            )
        )


def _geo_query(lat: float, lng: float, radius_m: float, count: int) -> dict[str, Any]:
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


class LiveSync:
    """Writes from transactions (after commit) and workers: ride status, driver state."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client
        self._emit = client.register_script(_EMIT)
        self._ride_changed = client.register_script(_RIDE_CHANGED)

    def emit(self, stream: str, event: str, data: dict[str, Any]) -> str:
        maxlen = ADMIN_MAXLEN if stream == ADMIN_STREAM else STREAM_MAXLEN
        return str(self._emit(keys=[stream], args=[event, json.dumps(data), maxlen]))

    def ride_changed(self, ride: Any, status_event: dict[str, Any] | None) -> bool:
        """Cache what the hot path needs to know of a ride, then publish its status event
        (once per status). Safe to repeat and to run late: older facts never overwrite
        newer ones. True if the status event was emitted now."""
        ride_id = str(ride.id)
        driver = str(ride.driver_id) if ride.driver_id else ""
        status = str(ride.status)
        fields = ride_facts_fields(ride)
        keys = [
            Keys.of(Keys.RIDE_META, ride_id),
            Keys.of(Keys.RIDE_PUBLISHED, ride_id),
            ride_stream(ride_id),
            Keys.ADMIN_EVENTS,
            Keys.of(Keys.DRIVER_STATE, driver) if driver else "",
            driver_stream(driver) if driver else "",
            Keys.of(Keys.RIDE_PATH, ride_id),
        ]
        args: list[Any] = [
            ride_version(ride),
            ride_id,
            status,
            int(status in DRIVER_ACTIVE),
            int(status in TERMINAL),
            json.dumps(status_event) if status_event is not None else "",
            STREAM_MAXLEN,
            ADMIN_MAXLEN,
            RIDE_FACTS_TTL_S,
        ]
        for k, v in fields.items():
            args += [k, v]
        return bool(self._ride_changed(keys=keys, args=args))

    def trip_path(self, ride_id: str) -> list[str]:
        return self.r.lrange(Keys.of(Keys.RIDE_PATH, ride_id), 0, -1)

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

    # --- dispatch: candidates and offers ---------------------------------------------------
    def candidates_near(
        self, lat: float, lng: float, radius_m: float, stale_s: float
    ) -> list[Candidate]:
        """Idle online drivers with a fresh position near (lat, lng), without an open offer."""
        found: Any = self.r.geosearch(**_geo_query(lat, lng, radius_m, 200))
        if not found:
            return []
        pipe = self.r.pipeline()
        for driver_id, _dist in found:
            pipe.hmget(Keys.of(Keys.DRIVER_STATE, driver_id), "status", "ride_id")
            pipe.hget(Keys.of(Keys.POSITION, driver_id), "ts")
            pipe.exists(Keys.of(Keys.DRIVER_OFFER, driver_id))
            pipe.hmget(Keys.of(Keys.OFFER_STATS, driver_id), "offered", "declined", "expired")
        rows: Any = pipe.execute()
        fresh_after = time.time() - stale_s
        out = []
        for n, (driver_id, dist) in enumerate(found):
            (status, ride_id), ts, has_offer, (offered, declined, expired) = rows[4 * n : 4 * n + 4]
            if status != "online" or ride_id or has_offer or not ts or float(ts) < fresh_after:
                continue
            out.append(
                Candidate(
                    driver_id,
                    float(dist),
                    offered=int(offered or 0),
                    ignored=int(declined or 0) + int(expired or 0),
                )
            )
        return out

    def offer_made(self, driver_id: str, payload: dict[str, Any], ttl_ms: int) -> None:
        pipe = self.r.pipeline()
        pipe.set(Keys.of(Keys.DRIVER_OFFER, driver_id), json.dumps(payload), px=ttl_ms)
        pipe.hincrby(Keys.of(Keys.OFFER_STATS, driver_id), "offered", 1)
        pipe.execute()
        self.emit(driver_stream(driver_id), "offer", payload)

    def offer_closed(self, driver_id: str, ride_id: str, reason: str) -> None:
        """The driver's offer of this ride is gone: counted, and (unless the driver ended
        it themselves) announced as withdrawn."""
        self.r.eval(
            "local v = redis.call('GET', KEYS[1]) "
            "if v and cjson.decode(v)['ride_id'] == ARGV[1] then redis.call('DEL', KEYS[1]) end",
            1,
            Keys.of(Keys.DRIVER_OFFER, driver_id),
            ride_id,
        )
        if reason in ("declined", "expired", "accepted"):
            self.r.hincrby(Keys.of(Keys.OFFER_STATS, driver_id), reason, 1)
        if reason not in ("accepted", "declined"):
            self.emit(
                driver_stream(driver_id), "offer_withdrawn", {"ride_id": ride_id, "reason": reason}
            )
