"""The Redis scripts of live state: one `.lua` file each in `lua/`, run with a prelude of
the constants the script names (key names from `Keys`, the domain's statuses and
limits), so no script spells a key or a status of its own."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from domain.geo import CELL_DEG, EARTH_RADIUS_M
from domain.pings import MAX_GEO_LAT
from domain.rides import DRIVER_ACTIVE, RideStatus
from infra.live.keys import Keys

LUA_DIR = Path(__file__).parent / "lua"


def _lua_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lua_trip_path() -> str:
    head, _, tail = Keys.trip_path("\0", "\1").partition("\0")
    middle, _, end = tail.partition("\1")
    return (
        "local function trip_path_key(driver, ride) return "
        f"{_lua_str(head)} .. driver .. {_lua_str(middle)} .. ride .. {_lua_str(end)} end"
    )


def lua_prelude() -> dict[str, str]:
    """Each constant a script may name, as the Lua line that defines it."""
    active = ", ".join(f"[{_lua_str(s)}] = true" for s in sorted(DRIVER_ACTIVE))
    return {
        # a stream's new entry, published on its sharded channel as "id\31prev\31event\31
        # data": `prev` is the entry before it, so a subscriber that did not see `prev`
        # knows it missed something and reads it from the stream (`infra.events`)
        "append_event": (
            "local function append_event(stream, maxlen, event, data)\n"
            "  local before = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)\n"
            "  local prev = before[1] and before[1][1] or '0-0'\n"
            "  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', event,\n"
            "    'd', data)\n"
            f"  redis.call('SPUBLISH', {_lua_str(Keys.CHANNEL_PREFIX)} .. stream,\n"
            "    id .. '\\31' .. prev .. '\\31' .. event .. '\\31' .. data)\n"
            "  return id\nend"
        ),
        "IN_PROGRESS": f"local IN_PROGRESS = {_lua_str(RideStatus.IN_PROGRESS)}",
        "ARRIVED": f"local ARRIVED = {_lua_str(RideStatus.ARRIVED)}",
        "DRIVER_ACTIVE": f"local DRIVER_ACTIVE = {{{active}}}",
        "MAX_GEO_LAT": f"local MAX_GEO_LAT = {MAX_GEO_LAT!r}",
        "EARTH_RADIUS_M": f"local EARTH_RADIUS_M = {EARTH_RADIUS_M!r}",
        "trip_path_key": _lua_trip_path(),
        # `domain.geo.cell_of`: the same division and floor on the same doubles (+ 0
        # turns a -0 into 0, as Python's floor does)
        "cell_of": (
            f"local CELL_DEG = {CELL_DEG!r}\n"
            "local function cell_of(lat, lng)\n"
            "  return string.format('%d:%d', math.floor(lat / CELL_DEG) + 0,\n"
            "    math.floor(lng / CELL_DEG) + 0)\nend"
        ),
    }


@cache
def lua_script(name: str) -> str:
    """`lua/<name>.lua` as Redis runs it: the prelude lines of the constants it names,
    then its own text."""
    body = (LUA_DIR / f"{name}.lua").read_text()
    used = [line for const, line in lua_prelude().items() if re.search(rf"\b{const}\b", body)]
    return "\n".join(used) + "\n" + body


SCRIPTS = (
    "apply_pings",
    "place",
    "emit",
    "emit_fixes",
    "ride_changed",
    "driver_ride",
    "close_offer",
)
