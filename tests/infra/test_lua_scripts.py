"""The Redis scripts of live state (`infra/lua/*.lua`) as Redis runs them: each lints
clean under luacheck (Lua 5.1, Redis's globals), compiles in a real Redis, and the
impossible-jump rule the ping script applies is the domain's own, case for case."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from domain.pings import InvalidPing, LastFix, Ping, PingRules, check
from infra.live.positions import PositionsAsync
from infra.live.scripts import LUA_DIR, SCRIPTS, lua_script
from infra.redis import get_sync_redis, make_async_redis

pytestmark = pytest.mark.live_state

REDIS_GLOBALS = ["redis", "cjson", "KEYS", "ARGV"]


def test_every_script_file_is_loaded_somewhere() -> None:
    assert sorted(p.stem for p in LUA_DIR.glob("*.lua")) == sorted(SCRIPTS)
    sources = "".join(p.read_text() for p in LUA_DIR.parent.glob("*.py"))
    for name in SCRIPTS:
        assert f'lua_script("{name}")' in sources


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_lints_clean(name: str, tmp_path: Path) -> None:
    luacheck = shutil.which("luacheck")
    assert luacheck, "luacheck is missing: scripts/bootstrap.sh --postgres installs it"
    script = tmp_path / f"{name}.lua"
    script.write_text(lua_script(name))
    out = subprocess.run(
        [
            luacheck,
            "--std",
            "lua51",
            "--globals",
            *REDIS_GLOBALS,
            "--codes",
            "--no-color",
            str(script),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout
    assert "0 warnings / 0 errors" in out.stdout


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_compiles_in_redis(name: str, db: None) -> None:
    text = lua_script(name)
    assert "@" not in text  # no placeholder left unfilled
    assert get_sync_redis().script_load(text) == hashlib.sha1(text.encode()).hexdigest()


# (metres north of the last fix, seconds later, the new fix's accuracy in metres)
JUMPS = [
    (100.0, 1.0, None),  # well within 70 m/s + 200 m of slack
    (269.0, 1.0, None),  # just under 70 + 200
    (275.0, 1.0, None),  # just over
    (1_000.0, 10.0, None),  # 700 + 200 = 900 allowed
    (1_000.0, 10.0, 150.0),  # an imprecise fix gets its accuracy as more slack
    (5_000.0, 10.0, 5_000.0),  # accuracy counts up to 1 km only
    (300.0, -2.0, None),  # a fix older than the last one: the time apart still counts
    (0.0, 0.0, None),
]
M_PER_DEG_LAT = 6_371_008.8 * 3.141592653589793 / 180


def _domain_says(north_m: float, dt: float, accuracy: float | None, t0: float) -> str:
    last = LastFix(52.0, 13.0, t0)
    ping = Ping(52.0 + north_m / M_PER_DEG_LAT, 13.0, t0 + dt, accuracy=accuracy)
    try:
        check(ping, t0 + 60, PingRules(), last)
    except InvalidPing as exc:
        return exc.reason
    return "accepted"


def _script_says(north_m: float, dt: float, accuracy: float | None, t0: float) -> str:
    async def run() -> str:
        client = make_async_redis()
        try:
            live, driver = PositionsAsync(client), f"jump-{uuid.uuid4()}"
            first = Ping(52.0, 13.0, t0, uuid=str(uuid.uuid4()))
            second = Ping(
                52.0 + north_m / M_PER_DEG_LAT,
                13.0,
                t0 + dt,
                accuracy=accuracy,
                uuid=str(uuid.uuid4()),
            )
            for ping in (first, second):
                res = await live.apply_pings(
                    driver, [ping], PingRules(), rate_limit=100, rate_window_s=10
                )
            return res.codes[0]
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize(("north_m", "dt", "accuracy"), JUMPS)
def test_the_jump_rule_is_the_same_in_lua_and_in_the_domain(
    north_m: float, dt: float, accuracy: float | None, db: None
) -> None:
    t0 = 1_790_000_000.0
    domain = _domain_says(north_m, dt, accuracy, t0)
    assert domain in ("accepted", "impossible_jump")
    assert _script_says(north_m, dt, accuracy, t0) == domain


def test_the_cases_cover_both_answers() -> None:
    answers = {_domain_says(*case, 1_790_000_000.0) for case in JUMPS}
    assert answers == {"accepted", "impossible_jump"}


CELL_CASES = [
    (0.0, 0.0),
    (-0.0, -0.0),
    (48.85, 2.35),  # 48.85 / 0.05 is a hair under 977 in binary
    (0.05, -0.05),
    (-33.8688, 151.2093),
    (89.99, 179.999999),
    (-85.05, -180.0),
    (52.52000000000001, 13.404954),
]


def test_the_cell_of_a_fix_is_the_same_in_lua_and_in_the_domain(db: None) -> None:
    """The ping script files a driver under the cell `domain.geo.cell_of` names, which is
    where the search looks: the two must agree to the last bit, boundaries included."""
    import random

    from domain.geo import cell_of
    from infra.live.scripts import lua_prelude

    rng = random.Random(7)
    cases = CELL_CASES + [(rng.uniform(-85, 85), rng.uniform(-180, 180)) for _ in range(300)]
    # points on and beside cell boundaries, where a rounding difference would show
    cases += [(k * 0.05, -k * 0.05) for k in range(-40, 40)]
    source = (
        lua_prelude()["cell_of"]
        + "\nlocal out = {}\nfor i = 1, #ARGV, 2 do"
        + " out[#out + 1] = cell_of(tonumber(ARGV[i]), tonumber(ARGV[i + 1])) end\nreturn out"
    )
    args = [repr(v) for lat, lng in cases for v in (lat, lng)]
    in_lua = get_sync_redis().eval(source, 0, *args)
    assert in_lua == [cell_of(lat, lng) for lat, lng in cases]


def test_live_state_is_on_what_this_pass_says(db: None) -> None:
    """The cluster pass (`RIDEHAIL_TEST_REDIS_CLUSTER=3`) really runs on a cluster of that
    many primaries, and the other passes on one Redis."""
    import os

    import redis
    import redis.cluster

    primaries = int(os.environ.get("RIDEHAIL_TEST_REDIS_CLUSTER", "0") or 0)
    client = get_sync_redis()
    if primaries:
        assert isinstance(client, redis.cluster.RedisCluster)
        assert len(client.get_primaries()) == primaries
        nodes = client.cluster_nodes().values()
        assert sum("slave" in node["flags"] for node in nodes) == primaries  # one each
        assert client.cluster_info()["cluster_state"] == "ok"
    else:
        assert isinstance(client, redis.Redis)
