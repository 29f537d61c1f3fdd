"""Live state in Redis: driver positions, ride event streams, the keys the hot path reads.

Keys (all prefixed, one driver or ride each):
- `drv:{id}:pos`    hash: lat, lng, heading, speed, accuracy, ts (unix s), at (RFC 3339)
- `drv:{id}:state`  hash: status (online|offline), ride_id, ride_status
- `drv:{id}:uuids`  sorted set of the client uuids seen recently (dedupe)
- `geo:drivers`     GEO set of online drivers; `drivers:seen` their last ping time
- `ride:{id}:meta`  hash: passenger_id, driver_id, status, pickup/dropoff
- `ride:{id}:events` stream of `location` / `status` / `eta` events (MAXLEN ~)
- `ride:{id}:path`  list of "ts,lat,lng,accuracy" while the trip is in progress (bounded)
- `admin:events`    stream of every status change and driver position
Every stream entry is also PUBLISHed on `ev:<stream>` as "id\\x1fevent\\x1fdata", which is
what each API process's single subscriber fans out to its SSE clients.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from domain.pings import Ping, PingRules

STREAM_MAXLEN = 1000
ADMIN_MAXLEN = 10000
PATH_MAX = 20000
UUID_KEEP = 2000
SEP = "\x1f"

ACTIVE_RIDE = ("accepted", "arrived", "in_progress")
TERMINAL_RIDE = ("completed", "cancelled", "no_show", "expired")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def channel(stream: str) -> str:
    return f"ev:{stream}"


def ride_stream(ride_id: str) -> str:
    return f"ride:{ride_id}:events"


ADMIN_STREAM = "admin:events"

# Apply a time-sorted batch of one driver's pings atomically, in one round trip:
# rate limit, dedupe by uuid and timestamp, reject impossible jumps against the last
# fix, keep the newest position, index it for search when online, append to the
# trip path, and publish one location event for the newest fix.
_APPLY = """
local pos_key, state_key, uuid_key, geo_key, seen_key, rl_key, admin_stream =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local driver = ARGV[1]
local now = tonumber(ARGV[2])
local max_speed = tonumber(ARGV[3])
local slack = tonumber(ARGV[4])
local rl_limit = tonumber(ARGV[5])
local rl_window = tonumber(ARGV[6])
local maxlen = ARGV[7]
local admin_maxlen = ARGV[8]
local path_max = tonumber(ARGV[9])
local uuid_keep = tonumber(ARGV[10])
local FIELDS = 8
local first = 11
local n = (#ARGV - first + 1) / FIELDS

local hits = redis.call('INCR', rl_key)
if hits == 1 then redis.call('EXPIRE', rl_key, rl_window) end
if hits > rl_limit then
  return {'rate_limited', redis.call('TTL', rl_key)}
end

local st = redis.call('HMGET', state_key, 'status', 'ride_id', 'ride_status')
local status, ride_id, ride_status = st[1] or 'offline', st[2], st[3]
local last = redis.call('HMGET', pos_key, 'lat', 'lng', 'ts')
local llat, llng, lts = tonumber(last[1]), tonumber(last[2]), tonumber(last[3])
local on_trip = ride_id and ride_status == 'in_progress'

local function dist(lat1, lng1, lat2, lng2)
  local r = math.pi / 180
  local p1, p2 = lat1 * r, lat2 * r
  local dp, dl = (lat2 - lat1) * r, (lng2 - lng1) * r
  local h = math.sin(dp / 2) ^ 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ^ 2
  if h > 1 then h = 1 end
  return 2 * 6371008.8 * math.asin(math.sqrt(h))
end

local codes = {}
local newest = nil
for i = 0, n - 1 do
  local b = first + i * FIELDS
  local lat, lng, ts = tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  local uuid = ARGV[b + 6]
  local code = 'accepted'
  if uuid ~= '' and redis.call('ZSCORE', uuid_key, uuid) then
    code = 'duplicate'
  elseif uuid == '' and lts and ts <= lts then
    code = 'duplicate'  -- no uuid: dedupe by timestamp, never move backwards
  elseif llat and dist(llat, llng, lat, lng)
      > max_speed * math.abs(ts - lts) + slack + math.min(tonumber(ARGV[b + 5]) or 0, 1000) then
    code = 'impossible_jump'
  end
  if code == 'accepted' then
    if uuid ~= '' then redis.call('ZADD', uuid_key, ts, uuid) end
    if on_trip then
      redis.call('RPUSH', 'ride:' .. ride_id .. ':path',
        ts .. ',' .. lat .. ',' .. lng .. ',' .. ARGV[b + 5])
    end
    if not lts or ts > lts then
      llat, llng, lts = lat, lng, ts
      newest = b
    end
  end
  codes[#codes + 1] = code
end

local event_id = ''
if newest then
  local b = newest
  redis.call('HSET', pos_key, 'lat', ARGV[b], 'lng', ARGV[b + 1], 'ts', ARGV[b + 2],
    'heading', ARGV[b + 3], 'speed', ARGV[b + 4], 'accuracy', ARGV[b + 5], 'at', ARGV[b + 7])
  if status == 'online' then
    redis.call('GEOADD', geo_key, ARGV[b + 1], ARGV[b], driver)
    redis.call('ZADD', seen_key, ARGV[b + 2], driver)
  end
  local function num(v) if v == '' then return cjson.null end return tonumber(v) end
  local data = cjson.encode({driver_id = driver, lat = tonumber(ARGV[b]),
    lng = tonumber(ARGV[b + 1]), heading = num(ARGV[b + 3]), speed = num(ARGV[b + 4]),
    accuracy = num(ARGV[b + 5]), recorded_at = ARGV[b + 7]})
  if ride_id and (ride_status == 'accepted' or ride_status == 'arrived'
      or ride_status == 'in_progress') then
    local stream = 'ride:' .. ride_id .. ':events'
    event_id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', 'location', 'd', data)
    redis.call('PUBLISH', 'ev:' .. stream, event_id .. '\\31' .. 'location' .. '\\31' .. data)
  end
  local aid = redis.call('XADD', admin_stream, 'MAXLEN', '~', admin_maxlen, '*',
    'e', 'location', 'd', data)
  redis.call('PUBLISH', 'ev:' .. admin_stream, aid .. '\\31' .. 'location' .. '\\31' .. data)
end
if on_trip then
  local path_key = 'ride:' .. ride_id .. ':path'
  if redis.call('LLEN', path_key) > path_max then redis.call('LTRIM', path_key, -path_max, -1) end
end
if redis.call('ZCARD', uuid_key) > uuid_keep then
  redis.call('ZREMRANGEBYRANK', uuid_key, 0, -uuid_keep - 1)
end
redis.call('EXPIRE', uuid_key, 86400)
return {'ok', status, ride_id or '', ride_status or '', event_id, unpack(codes)}
"""

# XADD + PUBLISH in one step, so the SSE id is the stream id and nothing is published
# that a resuming client could not read back.
_EMIT = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'e', ARGV[1], 'd', ARGV[2])
redis.call('PUBLISH', 'ev:' .. KEYS[1], id .. '\\31' .. ARGV[1] .. '\\31' .. ARGV[2])
return id
"""


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
            repr(now),
            rules.max_speed_ms,
            rules.jump_slack_m,
            rate_limit,
            rate_window_s,
            STREAM_MAXLEN,
            ADMIN_MAXLEN,
            PATH_MAX,
            UUID_KEEP,
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
            f"drv:{driver_id}:pos",
            f"drv:{driver_id}:state",
            f"drv:{driver_id}:uuids",
            "geo:drivers",
            "drivers:seen",
            f"drv:{driver_id}:rl:{window}",
            ADMIN_STREAM,
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
        return await self.r.hgetall(f"drv:{driver_id}:state")

    async def position(self, driver_id: str) -> dict[str, str]:
        return await self.r.hgetall(f"drv:{driver_id}:pos")

    async def ride_meta(self, ride_id: str) -> dict[str, str]:
        return await self.r.hgetall(f"ride:{ride_id}:meta")


class LiveSync:
    """Writes from transactions (after commit) and workers: ride status, driver state."""

    def __init__(self, client: redis.Redis) -> None:
        self.r: Any = client
        self._emit = client.register_script(_EMIT)

    def emit(self, stream: str, event: str, data: dict[str, Any]) -> str:
        maxlen = ADMIN_MAXLEN if stream == ADMIN_STREAM else STREAM_MAXLEN
        return str(self._emit(keys=[stream], args=[event, json.dumps(data), maxlen]))

    def ride_changed(self, meta: dict[str, Any], status_event: dict[str, Any] | None) -> None:
        """Cache what the hot path needs to know of a ride, then publish its status."""
        ride_id = str(meta["ride_id"])
        key = f"ride:{ride_id}:meta"
        fields = {k: ("" if v is None else str(v)) for k, v in meta.items()}
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=fields)
        pipe.expire(key, 7 * 86400)
        driver_id = meta.get("driver_id")
        status = str(meta["status"])
        if driver_id:
            state = f"drv:{driver_id}:state"
            if status in ACTIVE_RIDE:
                pipe.hset(state, mapping={"ride_id": ride_id, "ride_status": status})
            else:
                # only clear the driver's ride if it is still this one
                pipe.eval(
                    "if redis.call('HGET', KEYS[1], 'ride_id') == ARGV[1] then "
                    "redis.call('HDEL', KEYS[1], 'ride_id', 'ride_status') end",
                    1,
                    state,
                    ride_id,
                )
        if status in TERMINAL_RIDE:
            pipe.expire(f"ride:{ride_id}:path", 86400)
        pipe.execute()
        if status_event is not None:
            self.emit(ride_stream(ride_id), "status", status_event)
            self.emit(ADMIN_STREAM, "status", status_event)
            if driver_id:
                # the driver app hears of its ride's changes (e.g. the passenger cancelled)
                self.emit(f"drv:{driver_id}:events", "ride_status", status_event)

    def trip_path(self, ride_id: str) -> list[str]:
        return self.r.lrange(f"ride:{ride_id}:path", 0, -1)

    def set_device_key(self, key_hash: str, driver_id: str, old_hash: str | None) -> None:
        pipe = self.r.pipeline()
        if old_hash:
            pipe.delete(f"devkey:{old_hash}")
        pipe.set(f"devkey:{key_hash}", driver_id)
        pipe.execute()

    def sweep_stale(self, older_than: float) -> int:
        stale: list[str] = self.r.zrangebyscore("drivers:seen", "-inf", older_than)
        if not stale:
            return 0
        pipe = self.r.pipeline()
        pipe.zrem("geo:drivers", *stale)
        pipe.zrem("drivers:seen", *stale)
        pipe.execute()
        return len(stale)
