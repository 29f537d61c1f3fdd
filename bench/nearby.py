"""Nearby search with 100,000 live drivers: `GET /drivers/nearby` at a fixed rate.

    .venv/bin/python bench/nearby.py [--drivers 100000] [--rate 1000] [--duration 10]
                                     [--radius 3000] [--city-km 30]

Stack: Redis and one `uvicorn api.main:app` process (bench/_harness.py). The drivers are
put online and given one fix each through live state's own code (`PositionsAsync`:
`set_driver_status` + `apply_pings`, the ping path's scripts), spread evenly over a
square city `--city-km` a side. One passenger token (minted as bench/_seed.py does) asks.

Three phases, each open loop at `--rate` searches per second for `--duration` seconds
(the next request is sent on time whatever is still in flight):

* scattered: every search from a random point of the city (no two callers in one place:
  nothing to share; the search's own cost);
* crowded: searches from 40 busy places (stations, a stadium), each caller within 50 m of
  one (many callers in one place: answered once per second and place);
* reference: the same scattered points searched in Redis directly on a single GEO key
  holding all the drivers (`GEOSEARCH ... BYRADIUS r m ASC COUNT n`, the design before
  cells), by the bench, to compare Redis's CPU per search.

Printed per phase: searches answered, latency p50/p99 (request sent to body read), the
API's and Redis's CPU per search (from /proc and `INFO cpu`), the GEOSEARCH calls per
search and Redis's own time per GEOSEARCH (`INFO commandstats`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import subprocess
import time
import uuid
from typing import Any

import aiohttp
from _harness import (  # noqa: I001 - also puts the checkout on sys.path
    MACHINE,
    Stack,
    banner,
    cpu_meter,
    machine,
    percentile,
)

CENTRE = (48.8566, 2.3522)
M_PER_DEG = 111_320.0


def city_point(rng: random.Random, side_m: float) -> tuple[float, float]:
    dy, dx = rng.uniform(-side_m / 2, side_m / 2), rng.uniform(-side_m / 2, side_m / 2)
    lat = CENTRE[0] + dy / M_PER_DEG
    return lat, CENTRE[1] + dx / (M_PER_DEG * math.cos(math.radians(CENTRE[0])))


async def seed_drivers(redis_url: str, n: int, side_m: float) -> float:
    """Every driver online with one fix, through the product's live-state code."""
    import os

    os.environ["RIDEHAIL_REDIS_URL"] = redis_url
    from domain.pings import Ping, PingRules
    from infra.live.positions import PositionsAsync
    from infra.redis import make_async_redis
    from infra.settings import get_settings

    get_settings.cache_clear()
    client = make_async_redis()
    live = PositionsAsync(client)
    rng = random.Random(1)
    now = time.time()
    started = time.monotonic()

    async def one(k: int) -> None:
        driver = str(uuid.UUID(int=k + 1))
        await live.set_driver_status(driver, True)
        lat, lng = city_point(rng, side_m)
        await live.apply_pings(
            driver, [Ping(lat, lng, now)], PingRules(), rate_limit=10, rate_window_s=10
        )

    try:
        for start in range(0, n, 1000):
            await asyncio.gather(*(one(k) for k in range(start, min(n, start + 1000))))
    finally:
        await client.aclose()
    return time.monotonic() - started


def redis_info(port: int, section: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), "info", section],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout


def redis_cpu_s(port: int) -> float:
    info = redis_info(port, "cpu")
    user = float(re.search(r"used_cpu_user:([\d.]+)", info).group(1))  # type: ignore[union-attr]
    sys_ = float(re.search(r"used_cpu_sys:([\d.]+)", info).group(1))  # type: ignore[union-attr]
    return user + sys_


def geosearch_stats(port: int) -> tuple[int, int]:
    """(calls, microseconds) of GEOSEARCH so far."""
    m = re.search(r"cmdstat_geosearch:calls=(\d+),usec=(\d+)", redis_info(port, "commandstats"))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


async def open_loop(
    rate: float, duration_s: float, points: list[tuple[float, float]], ask: Any
) -> tuple[list[float], int]:
    """`ask(point)` at `rate` per second, on schedule; latencies of those that succeeded."""
    latencies: list[float] = []
    failed = 0
    tasks = []

    async def timed(point: tuple[float, float]) -> None:
        nonlocal failed
        t = time.perf_counter()
        try:
            await ask(point)
            latencies.append(time.perf_counter() - t)
        except Exception:
            failed += 1

    start = time.perf_counter()
    n = int(rate * duration_s)
    for k in range(n):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(points[k % len(points)])))
    await asyncio.gather(*tasks)
    return sorted(latencies), failed


async def measure(args: argparse.Namespace, stack: Stack, token: str) -> None:
    assert stack.api
    assert stack.redis
    side_m = args.city_km * 1000
    rng = random.Random(7)
    n = int(args.rate * args.duration)
    scattered = [city_point(rng, side_m) for _ in range(n)]
    places = [city_point(rng, side_m * 0.8) for _ in range(40)]
    crowded = []
    for _ in range(n):
        lat, lng = rng.choice(places)
        crowded.append(
            (lat + rng.uniform(-50, 50) / M_PER_DEG, lng + rng.uniform(-50, 50) / M_PER_DEG)
        )

    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=200)
    url = f"{stack.api_url}/api/v1/drivers/nearby"
    found_counts: list[int] = []
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def ask(point: tuple[float, float]) -> None:
            params = {"lat": repr(point[0]), "lng": repr(point[1]), "radius_m": str(args.radius)}
            async with http.get(url, params=params) as res:
                body = await res.json()
                if res.status != 200:
                    raise RuntimeError(f"{res.status} {body}")
                found_counts.append(len(body["items"]))

        # warm-up: connections, the API's first requests
        await open_loop(min(args.rate, 200), 2, scattered[:400], ask)

        for name, points in (("scattered", scattered), ("crowded", crowded)):
            found_counts.clear()
            calls0, usec0 = geosearch_stats(stack.redis_port)
            redis0 = redis_cpu_s(stack.redis_port)
            began = time.monotonic()
            with cpu_meter(api=stack.api.pid) as cpu:
                latencies, failed = await open_loop(args.rate, args.duration, points, ask)
            took = time.monotonic() - began
            redis1 = redis_cpu_s(stack.redis_port)
            calls1, usec1 = geosearch_stats(stack.redis_port)
            done = len(latencies)
            calls = calls1 - calls0
            print(
                f"{name:>10}: {done:,} searches sent in {args.duration:g} s at {args.rate:g}/s, "
                f"answered by {took:.1f} s "
                f"({failed} failed), drivers returned p50 "
                f"{percentile(sorted(found_counts), 50)}; latency p50 "
                f"{percentile(latencies, 50) * 1000:.2f} ms, p99 "
                f"{percentile(latencies, 99) * 1000:.2f} ms (target p99 < 5 ms)"
            )
            print(
                f"{'':>10}  CPU per search: API {cpu['api'] / max(done, 1) * 1e3:.2f} ms, "
                f"Redis {(redis1 - redis0) / max(done, 1) * 1e3:.3f} ms; GEOSEARCH calls "
                f"per search {calls / max(done, 1):.2f}, Redis time per GEOSEARCH "
                f"{(usec1 - usec0) / max(calls, 1):.1f} µs; machine busy "
                f"{cpu[MACHINE] / took:.2f} of 2 cores (API {cpu['api'] / took:.2f})"
            )

    # the reference: one GEO key of every driver, searched directly (the design before)
    import redis as redis_py

    r = redis_py.Redis(port=stack.redis_port, decode_responses=True)
    try:
        cells = r.smembers("geo:cells")
        for cell in cells:
            members = r.geosearch(
                f"geo:{{{cell}}}", longitude=CENTRE[1], latitude=CENTRE[0], radius=20_000,
                unit="km", withcoord=True,
            )  # fmt: skip
            pipe = r.pipeline(transaction=False)
            for member, (lng, lat) in members:
                pipe.geoadd("bench:geo:all", (lng, lat, member))
            pipe.execute()
        total = r.zcard("bench:geo:all")
        calls0, usec0 = geosearch_stats(stack.redis_port)
        redis0 = redis_cpu_s(stack.redis_port)
        count = 20 * 2 + 10  # what the endpoint asks for (limit 20)
        sample = scattered[: min(2000, len(scattered))]
        for lat, lng in sample:
            r.geosearch(
                "bench:geo:all", longitude=lng, latitude=lat, radius=args.radius, unit="m",
                sort="ASC", count=count, withdist=True,
            )  # fmt: skip
        redis1 = redis_cpu_s(stack.redis_port)
        calls1, usec1 = geosearch_stats(stack.redis_port)
        print(
            f"{'reference':>10}: one GEO key of {total:,} drivers, GEOSEARCH {args.radius:g} m "
            f"COUNT {count} from the bench, {len(sample)} searches: Redis CPU per search "
            f"{(redis1 - redis0) / len(sample) * 1e3:.3f} ms, Redis time per GEOSEARCH "
            f"{(usec1 - usec0) / max(calls1 - calls0, 1):.1f} µs"
        )
    finally:
        r.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drivers", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--radius", type=float, default=3000)
    parser.add_argument("--city-km", type=float, default=30)
    args = parser.parse_args()
    banner("nearby search")
    print(f"machine: {machine()}")
    with Stack(extra_env={"RIDEHAIL_DRIVER_STALE_S": "3600"}) as stack:
        seeded_s = asyncio.run(
            seed_drivers(
                f"redis://127.0.0.1:{stack.redis_port}/0", args.drivers, args.city_km * 1000
            )
        )
        print(
            f"{args.drivers:,} drivers online in a {args.city_km:g} x {args.city_km:g} km city "
            f"(seeded through live state's code in {seeded_s:.1f} s); radius {args.radius:g} m, "
            "limit 20 (the endpoint's default)"
        )
        token = stack.seed(0, 1)["passengers"][0]["token"]
        asyncio.run(measure(args, stack, token))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
