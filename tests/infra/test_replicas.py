"""What a live-state shard's failover can lose, bounded: on a cluster a trip's fix is
answered only once the replica of the driver's shard has it (Redis's WAIT after a write
on the same connection), so the replica promoted when the primary dies holds every trip
fix an app was told was stored. A replica away does not stop the service: the answer then
comes after `redis_wait_ms`, and is counted. Against a cluster of its own (a replica is
stopped here), in every pass."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode

from devtools import launcher
from domain.pings import Ping, PingRules
from infra.live.keys import Keys
from infra.live.positions import PositionsAsync

DRIVER, RIDE = "drv-replicated", "ride-replicated"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[launcher.RedisClusterNodes]:
    nodes = launcher.RedisClusterNodes(Path(tmp_path_factory.mktemp("cluster")), primaries=3)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


def _replica_of(nodes: launcher.RedisClusterNodes, key: str) -> tuple[int, int]:
    """The ports of the primary holding `key` and of its replica."""
    r = redis.RedisCluster(host="127.0.0.1", port=nodes.ports[0], decode_responses=True)
    try:
        primary = int(r.get_node_from_key(key).port)
    finally:
        r.close()
    node = redis.Redis(port=primary, decode_responses=True)
    try:
        info: Any = node.info("replication")
    finally:
        node.close()
    return primary, int(info["slave0"]["port"])


def _on_a_trip(nodes: launcher.RedisClusterNodes) -> None:
    r = redis.RedisCluster(host="127.0.0.1", port=nodes.ports[0], decode_responses=True)
    state = Keys.of(Keys.DRIVER_STATE, DRIVER)
    r.hset(state, mapping={"status": "online", "ride_id": RIDE, "ride_status": "in_progress"})
    r.close()


def _blocked_clients(port: int) -> int:
    node = redis.Redis(port=port, decode_responses=True)
    try:
        return int(node.info("clients")["blocked_clients"])
    finally:
        node.close()


def _path_on(port: int) -> list[str]:
    """The trip's path as the replica at `port` holds it."""
    node = redis.Redis(port=port, decode_responses=True)
    try:
        node.execute_command("READONLY")
        return list(node.lrange(Keys.trip_path(DRIVER, RIDE), 0, -1))  # type: ignore[arg-type]
    finally:
        node.close()


async def _client(nodes: launcher.RedisClusterNodes) -> Any:
    client = aioredis.RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", p) for p in nodes.ports], decode_responses=True
    )
    await client.initialize()
    return client


def test_a_trip_fix_is_answered_once_the_replica_has_it(
    cluster: launcher.RedisClusterNodes,
) -> None:
    _on_a_trip(cluster)
    primary, replica = _replica_of(cluster, Keys.of(Keys.POSITION, DRIVER))
    replica_proc = cluster.procs[f"cluster-{replica}"]
    ts = time.time()

    async def scenario() -> tuple[bool, list[str], int]:
        client = await _client(cluster)
        live = PositionsAsync(client, wait=(1, 60_000))
        os.kill(replica_proc.pid, signal.SIGSTOP)  # the replica hears nothing meanwhile
        try:
            task = asyncio.ensure_future(
                live.apply_pings(
                    DRIVER, [Ping(52.5, 13.4, ts, uuid="kept")], PingRules(),
                    rate_limit=100, rate_window_s=10,
                )
            )  # fmt: skip
            # the answer waits: the shard holds a client blocked in WAIT for the replica
            deadline = time.monotonic() + 30
            while _blocked_clients(primary) < 1:
                assert not task.done(), "answered while the replica had not the fix"
                assert time.monotonic() < deadline, "nothing waited for the replica"
                await asyncio.sleep(0.05)
            waited = not task.done()
        finally:
            os.kill(replica_proc.pid, signal.SIGCONT)
        res = await task
        assert res.codes == ["accepted"]
        unreplicated = live.unreplicated
        await client.aclose()
        return waited, _path_on(replica), unreplicated

    waited, path, unreplicated = asyncio.run(scenario())
    assert waited
    # answered: the replica (the one a failover promotes) has the fix
    assert [float(p.split(",")[0]) for p in path] == [pytest.approx(ts, abs=1e-3)]
    assert unreplicated == 0


def _waits(port: int) -> int:
    """How many WAITs the node at `port` has run."""
    node = redis.Redis(port=port, decode_responses=True)
    try:
        stats: Any = node.info("commandstats")
        return int(stats.get("cmdstat_wait", {}).get("calls", 0))
    finally:
        node.close()


def test_a_replica_away_delays_a_trip_fix_by_the_wait_once_and_no_more(
    cluster: launcher.RedisClusterNodes,
) -> None:
    """A shard without its replica (just promoted, or the replica stopped): the first
    trip fix waits `redis_wait_ms` and is answered; the next ones are answered without
    waiting on that shard again for a while (one wait, not one per ping batched with it)."""
    _on_a_trip(cluster)
    primary, replica = _replica_of(cluster, Keys.of(Keys.POSITION, DRIVER))
    replica_proc = cluster.procs[f"cluster-{replica}"]

    async def scenario() -> tuple[list[str], int, int]:
        client = await _client(cluster)
        live = PositionsAsync(client, wait=(1, 200))
        live.no_replica_s = 3600  # however slow the machine, the next calls fall within it
        os.kill(replica_proc.pid, signal.SIGSTOP)
        codes = []
        try:
            waits = _waits(primary)
            for n in range(3):
                res = await live.apply_pings(
                    DRIVER, [Ping(52.5, 13.4, time.time(), uuid=f"alone-{n}")], PingRules(),
                    rate_limit=100, rate_window_s=10,
                )  # fmt: skip
                codes += res.codes
            waited = _waits(primary) - waits
        finally:
            os.kill(replica_proc.pid, signal.SIGCONT)
        await client.aclose()
        return codes, live.unreplicated, waited

    codes, unreplicated, waited = asyncio.run(scenario())
    assert codes == ["accepted"] * 3  # stored on the primary, and said so
    assert unreplicated == 3  # counted: these answers came before a replica had them
    assert waited == 1  # the shard was waited on once
