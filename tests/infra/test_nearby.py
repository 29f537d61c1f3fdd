"""Nearby search over the cells of live state, against a real Redis (and a real cluster
in the cluster pass): the drivers it returns are exactly the nearest within the radius,
whichever cells they are in and however far the search had to widen, and callers in one
place share one search without sharing their distances."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from domain.geo import Point, cell_of, haversine_m
from domain.pings import Ping, PingRules
from infra.live.positions import NearbyAnswers, PositionsAsync
from infra.redis import make_async_redis

pytestmark = pytest.mark.live_state

# a corner where four cells meet (0.05° grid), so the drivers spread over several
CORNER = (48.85, 2.35)


async def _seed(live: PositionsAsync, rng: random.Random, n: int) -> dict[str, Point]:
    drivers = {}
    now = time.time()
    for _ in range(n):
        driver = f"near-{uuid.uuid4()}"
        lat = CORNER[0] + rng.uniform(-0.06, 0.06)
        lng = CORNER[1] + rng.uniform(-0.08, 0.08)
        await live.set_driver_status(driver, True)
        res = await live.apply_pings(
            driver, [Ping(lat, lng, now)], PingRules(), rate_limit=100, rate_window_s=10
        )
        assert res.codes == ["accepted"]
        drivers[driver] = Point(lat, lng)
    return drivers


def test_nearby_returns_exactly_the_nearest_within_the_radius(db: None) -> None:
    rng = random.Random(3)

    async def run() -> None:
        client = make_async_redis()
        try:
            live = PositionsAsync(client)
            drivers = await _seed(live, rng, 400)
            assert len({cell_of(p.lat, p.lng) for p in drivers.values()}) >= 9
            for radius, count in ((300, 5), (1_500, 10), (4_000, 30), (12_000, 500)):
                for _ in range(6):
                    here = Point(
                        CORNER[0] + rng.uniform(-0.03, 0.03), CORNER[1] + rng.uniform(-0.04, 0.04)
                    )
                    truth = sorted(
                        (haversine_m(here, p), d)
                        for d, p in drivers.items()
                        if haversine_m(here, p) <= radius
                    )[:count]
                    got = await live.nearby(here.lat, here.lng, radius, count)
                    # the same drivers, nearest first; the index keeps 52-bit geohashes
                    # (a metre at most), so two drivers a metre apart may swap places
                    assert len(got) == len(truth)
                    for (driver, dist), (want, _) in zip(got, truth, strict=True):
                        exact = haversine_m(here, drivers[driver])
                        assert abs(dist - exact) < 1.0
                        assert abs(dist - want) < 1.0
                    assert [d for d, _ in got] == [d for _, d in truth] or all(
                        abs(a[1] - b[0]) < 1.0 for a, b in zip(got, truth, strict=True)
                    )
        finally:
            await client.aclose()

    asyncio.run(run())


def test_callers_in_one_place_share_one_search_for_a_second() -> None:
    calls: list[tuple[float, float, float, int]] = []

    async def search(lat: float, lng: float, radius: float, count: int, slack: float) -> Any:
        calls.append((lat, lng, radius + slack, count))
        await asyncio.sleep(0.01)
        return [("d1", 0.0, 48.8501, 2.3501)]

    async def run() -> None:
        now = [1000.0]  # a clock of the test's own: no sleeping, no machine's pace
        answers = NearbyAnswers(ttl_s=1.0, clock=lambda: now[0])
        fn: Callable[..., Awaitable[Any]] = search
        both = await asyncio.gather(
            answers.get(48.85001, 2.35001, 1000, 10, fn),
            answers.get(48.85004, 2.34997, 1000, 10, fn),  # 5 m away: the same place
        )
        assert both[0] == both[1]
        assert len(calls) == 1
        # searched around the place with the grid's half-diagonal more radius
        assert calls[0][2] > 1000 + 70
        await answers.get(48.86, 2.35, 1000, 10, fn)  # a kilometre away: its own search
        assert len(calls) == 2
        now[0] += 0.9
        await answers.get(48.85001, 2.35001, 1000, 10, fn)  # within the second: shared
        assert len(calls) == 2
        now[0] += 0.2
        await answers.get(48.85001, 2.35001, 1000, 10, fn)  # a second later: searched again
        assert len(calls) == 3

    asyncio.run(run())
