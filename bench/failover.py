"""What a live-state shard's failover loses: trip fixes acknowledged, then absent once the
replica took over. Run twice on a fresh 3-primary cluster each (replicas, node timeout
1 s, as `RIDEHAIL_DEV_REDIS_CLUSTER`): without WAIT (the reference) and with it (the
product's default on a cluster: `RIDEHAIL_REDIS_WAIT_REPLICAS=1`, 100 ms).

    .venv/bin/python bench/failover.py [--drivers 200] [--seconds 6] [--kills 3]

`--drivers` drivers on trips each send a fix every 50 ms through the product's hot path
(`PositionsAsync.apply_pings`: the driver's script, then the second step, with WAIT when
asked). Each acknowledged fix (code `accepted`) is noted. After a second of that, the
primary of one shard is SIGKILLed, the load goes on through the failover (refused calls
are not acknowledged, the driver sends its next fix), `--seconds` in all; then every
path is read back from the cluster and each acknowledged fix looked for. Repeated
`--kills` times (a new cluster each). Printed per mode: fixes acknowledged (in all, and
on the shard killed), acknowledged then lost, the answer's latency p50/p99 before the
kill (the price of WAIT, as a ratio to the reference), answers that came before a
replica had them (WAIT's timeout), and the seconds the shard was out.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from _harness import banner, machine, percentile  # noqa: I001 - also puts the checkout on sys.path
from redis.asyncio.cluster import ClusterNode

from devtools import launcher
from domain.pings import Ping, PingRules
from infra.live.keys import Keys
from infra.live.positions import PositionsAsync
from infra.outages import OUTAGES

RULES = PingRules()
logging.getLogger("infra.live.positions").setLevel(logging.ERROR)  # the failover is expected


async def one_run(drivers: int, seconds: float, wait: tuple[int, int], seed: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="ridehail-failover-"))
    nodes = launcher.RedisClusterNodes(data, primaries=3).start()
    try:
        return await _load(nodes, drivers, seconds, wait, seed)
    finally:
        nodes.stop()


async def _load(
    nodes: launcher.RedisClusterNodes,
    drivers: int,
    seconds: float,
    wait: tuple[int, int],
    seed: int,
) -> dict[str, Any]:
    ids = [f"fo-{seed}-{n}" for n in range(drivers)]
    sync = redis.RedisCluster(host="127.0.0.1", port=nodes.ports[0], decode_responses=True)
    for d in ids:
        sync.hset(
            Keys.of(Keys.DRIVER_STATE, d),
            mapping={"status": "online", "ride_id": f"r-{d}", "ride_status": "in_progress"},
        )
    # the shard killed: the one holding the first driver's keys
    victim = int(sync.get_node_from_key(Keys.of(Keys.POSITION, ids[0])).port)
    on_victim = {
        d for d in ids if int(sync.get_node_from_key(Keys.of(Keys.POSITION, d)).port) == victim
    }
    client: Any = aioredis.RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", p) for p in nodes.ports],
        decode_responses=True,
    )
    await client.initialize()
    live = PositionsAsync(client, wait=wait)
    acked: dict[str, list[float]] = {d: [] for d in ids}
    before_kill: list[float] = []
    killed_at = 0.0
    back_at = 0.0
    t0 = time.monotonic()
    stop = t0 + seconds
    fix_ts = time.time()

    async def drive(d: str, k: int) -> None:
        nonlocal fix_ts
        await asyncio.sleep(k * 0.05 / len(ids))  # spread over the period
        n = 0
        while time.monotonic() < stop:
            n += 1
            ts = fix_ts + n * 0.05
            began = time.monotonic()
            try:
                res = await live.apply_pings(
                    d, [Ping(52.5 + n * 1e-6, 13.4, ts, uuid=f"{d}-{n}")], RULES,
                    rate_limit=10_000, rate_window_s=10,
                )  # fmt: skip
            except OUTAGES:
                res = None
            took = time.monotonic() - began
            if res is not None and res.codes == ["accepted"]:
                acked[d].append(ts)
                if not killed_at:
                    before_kill.append(took)
            await asyncio.sleep(max(0.0, 0.05 - took))

    async def kill() -> None:
        nonlocal killed_at, back_at
        await asyncio.sleep(1.0)
        os.kill(nodes.procs[f"cluster-{victim}"].pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while len(nodes.masters()) < nodes.primaries:
            await asyncio.sleep(0.05)
        back_at = time.monotonic()

    await asyncio.gather(kill(), *(drive(d, k) for k, d in enumerate(ids)))
    await asyncio.to_thread(nodes.wait_ok)
    sync.close()
    sync = redis.RedisCluster(host="127.0.0.1", port=nodes.masters()[0], decode_responses=True)
    lost = lost_on_victim = 0
    for d in ids:
        raw: Any = sync.lrange(Keys.trip_path(d, f"r-{d}"), 0, -1)
        path = sorted(float(p.split(",")[0]) for p in raw)  # the script keeps 14 digits
        missing = sum(1 for ts in acked[d] if not _near(path, ts))
        lost += missing
        if d in on_victim:
            lost_on_victim += missing
    sync.close()
    await client.aclose()
    before_kill.sort()
    return {
        "acked": sum(map(len, acked.values())),
        "acked_on_victim": sum(len(acked[d]) for d in on_victim),
        "lost": lost,
        "lost_on_victim": lost_on_victim,
        "p50_ms": percentile(before_kill, 0.5) * 1000,
        "p99_ms": percentile(before_kill, 0.99) * 1000,
        "unreplicated": live.unreplicated,
        "out_s": back_at - killed_at,
    }


def _near(sorted_ts: list[float], ts: float, tol: float = 1e-3) -> bool:
    at = bisect.bisect_left(sorted_ts, ts - tol)
    return at < len(sorted_ts) and sorted_ts[at] <= ts + tol


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--drivers", type=int, default=200)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--kills", type=int, default=3)
    args = p.parse_args()
    banner("a live-state shard's failover under trip fixes")
    print(machine())
    print(f"{args.drivers} drivers on trips, a fix each 50 ms, {args.seconds:.0f} s; "
          f"a primary SIGKILLed 1 s in; {args.kills} kill(s) per mode")  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {}
    for name, wait in (("no WAIT (reference)", (0, 0)), ("WAIT 1 replica, 100 ms", (1, 100))):
        rows[name] = [
            asyncio.run(one_run(args.drivers, args.seconds, wait, seed))
            for seed in range(args.kills)
        ]
    ref_p50 = sum(r["p50_ms"] for r in rows["no WAIT (reference)"]) / args.kills
    for name, runs in rows.items():
        acked = sum(r["acked"] for r in runs)
        on_victim = sum(r["acked_on_victim"] for r in runs)
        lost = sum(r["lost"] for r in runs)
        lost_v = sum(r["lost_on_victim"] for r in runs)
        p50 = sum(r["p50_ms"] for r in runs) / len(runs)
        p99 = max(r["p99_ms"] for r in runs)
        print(f"\n{name}")
        print(f"  fixes acknowledged      {acked:,} ({on_victim:,} on the shard killed)")
        print(f"  acknowledged, then lost {lost} ({lost_v} on the shard killed)")
        print(f"  answer before the kill  p50 {p50:.2f} ms ({p50 / ref_p50:.2f}x the reference), "
              f"p99 {p99:.2f} ms")  # fmt: skip
        print(f"  answered before a replica had them: {sum(r['unreplicated'] for r in runs)}")
        print("  shard out (kill to replica promoted): "
              + ", ".join(f"{r['out_s']:.1f} s" for r in runs))  # fmt: skip


if __name__ == "__main__":
    main()
