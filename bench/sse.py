"""SSE: memory per idle client, and ping-to-SSE delivery latency with many subscribers.

    .venv/bin/python bench/sse.py [--clients 1000] [--clients-per-ride 1] [--rate 200]
                                  [--duration 10]

One API process. `--clients` SSE connections to `GET /api/v1/rides/{id}/events`
(passenger tokens), spread over `clients / clients-per-ride` accepted rides; then the
rides' drivers post single pings at `--rate` per second, and every client times each
`location` event from just before its ping's POST was sent to when the event was parsed
(one monotonic clock: the pinger and the SSE clients share this process and its loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _harness import (
    MACHINE,
    Stack,
    banner,
    cpu_meter,
    machine,
    metrics,
    percentile,
    proc_stat,
    rss_kb,
    status_delta,
    uvicorn_flags,
)

from infra.live.keys import iso

API = "/api/v1"
PICKUP = {"lat": 52.52, "lng": 13.405}
DROPOFF = {"lat": 52.50, "lng": 13.45}


@dataclass
class Rider:
    """One accepted ride: its driver (who pings) and passenger (who follows)."""

    driver_id: str
    driver_token: str
    passenger_token: str
    ride_id: str = ""


@dataclass
class Tally:
    sent: dict[tuple[str, str], float] = field(default_factory=dict)  # (driver, at) -> t0
    latencies: list[float] = field(default_factory=list)  # seconds, per delivered event
    delivered_keys: set[tuple[str, str]] = field(default_factory=set)
    unmatched: int = 0
    other_events: dict[str, int] = field(default_factory=dict)
    ready: int = 0
    open_errors: list[str] = field(default_factory=list)
    ended: int = 0
    post_status: dict[int, int] = field(default_factory=dict)
    post_latencies: list[float] = field(default_factory=list)
    post_errors: list[str] = field(default_factory=list)
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession, path: str, token: str, body: Any, expect: int
) -> dict[str, Any]:
    for attempt in range(3):
        async with http.post(path, json=body, headers=auth(token)) as r:
            text = await r.text()
            if r.status == expect:
                return json.loads(text)  # type: ignore[no-any-return]
            if attempt == 2 or r.status < 500:
                raise RuntimeError(f"POST {path} -> {r.status} {text[:500]}")
            print(f"  !! POST {path} -> {r.status} {text[:300]} (retrying)")
        await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


async def setup_rides(stack: Stack, riders: list[Rider], concurrency: int) -> int:
    """Each driver online, each passenger requests a ride, its driver accepts it (after
    the bench has played the dispatcher, when the code has dispatch offers).
    Returns how many offers the bench made."""
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(stack.api_url, connector=conn) as http:

        async def request(rider: Rider) -> None:
            async with sem:
                await call(
                    http, f"{API}/drivers/me/status", rider.driver_token, {"status": "online"}, 200
                )
                ride = await call(
                    http,
                    f"{API}/rides",
                    rider.passenger_token,
                    {"pickup": PICKUP, "dropoff": DROPOFF, "payment": "cash"},
                    201,
                )
                rider.ride_id = ride["id"]

        async def accept(rider: Rider) -> None:
            async with sem:
                await call(
                    http, f"{API}/rides/{rider.ride_id}/accept", rider.driver_token, None, 200
                )

        await asyncio.gather(*(request(r) for r in riders))
        offers = stack.make_offers([(r.ride_id, r.driver_id) for r in riders])
        await asyncio.gather(*(accept(r) for r in riders))
    return offers


async def sse_client(
    http: aiohttp.ClientSession,
    url: str,
    token: str,
    tally: Tally,
    gate: asyncio.Semaphore,
    expected: int,
) -> None:
    """Follows one stream until cancelled; times every `location` event it parses."""
    released = False
    await gate.acquire()
    try:
        async with http.get(url, headers=auth(token) | {"Accept": "text/event-stream"}) as r:
            if r.status != 200:
                tally.open_errors.append(f"{r.status} {(await r.text())[:200]}")
                return
            event = data = None
            async for raw in r.content:
                now = time.monotonic()
                if not released:
                    released = True
                    gate.release()
                    tally.ready += 1
                    if tally.ready == expected:
                        tally.all_ready.set()
                line = raw.rstrip(b"\r\n")
                if not line:
                    if event == "location" and data is not None:
                        fix = json.loads(data)
                        key = (fix["driver_id"], fix["recorded_at"])
                        t0 = tally.sent.get(key)
                        if t0 is None:
                            tally.unmatched += 1
                        else:
                            tally.latencies.append(now - t0)
                            tally.delivered_keys.add(key)
                    elif event is not None:
                        tally.other_events[event] = tally.other_events.get(event, 0) + 1
                    event = data = None
                elif line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data = line[5:].strip()
            tally.ended += 1
    except aiohttp.ClientError as exc:
        tally.open_errors.append(repr(exc))
    finally:
        if not released:
            gate.release()


async def pinger(
    base: str, riders: list[Rider], rate: float, duration_s: float, tally: Tally
) -> int:
    """Single pings at a fixed rate, round-robin over the ride drivers; returns how many."""
    conn = aiohttp.TCPConnector(limit=64)
    rng = random.Random(7)
    ts0 = time.time() - 3000
    async with aiohttp.ClientSession(base, connector=conn) as http:

        async def post(rider: Rider, body: dict[str, Any]) -> None:
            key = (rider.driver_id, iso(body["recorded_at"]))
            t0 = time.monotonic()
            tally.sent[key] = t0
            try:
                async with http.post(
                    f"{API}/drivers/me/location", json=body, headers=auth(rider.driver_token)
                ) as r:
                    text = await r.read()
                    tally.post_latencies.append(time.monotonic() - t0)
                    tally.post_status[r.status] = tally.post_status.get(r.status, 0) + 1
                    if r.status != 202 and len(tally.post_errors) < 5:
                        tally.post_errors.append(f"{r.status} {text[:300]!r}")
                    if r.status != 202:
                        tally.sent.pop(key, None)  # never delivered: not counted missing
            except aiohttp.ClientError as exc:
                tally.sent.pop(key, None)
                tally.post_errors.append(repr(exc))

        start = time.monotonic()
        total = int(rate * duration_s)
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            rider = riders[i % len(riders)]
            body = {
                "lat": round(PICKUP["lat"] + rng.uniform(-1e-4, 1e-4), 6),
                "lng": round(PICKUP["lng"] + rng.uniform(-1e-4, 1e-4), 6),
                "recorded_at": round(ts0 + i // len(riders), 3),
                "speed": 5,
            }
            tasks.append(asyncio.create_task(post(rider, body)))
        await asyncio.gather(*tasks)
        return total


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.2f}"


async def run(args: argparse.Namespace) -> int:
    per_ride = args.clients_per_ride
    n_rides = max(1, args.clients // per_ride)
    n_clients = n_rides * per_ride
    banner("SSE")
    print(f"machine: {machine()}")
    print(
        f"server: 1 x uvicorn {' '.join(uvicorn_flags())} --no-access-log; "
        f"{n_clients} SSE clients over {n_rides} rides ({per_ride} per ride, passenger token)"
    )
    with Stack(extra_env={"RIDEHAIL_PING_RATE_LIMIT": "1000000"}) as stack:
        assert stack.api
        assert stack.redis
        api_pid, base = stack.api.pid, stack.api_url

        t = time.monotonic()
        seeded = stack.seed(n_rides, n_rides)
        riders = [
            Rider(d["id"], d["token"], p["token"])
            for d, p in zip(seeded["drivers"], seeded["passengers"], strict=True)
        ]
        print(f"seeded {n_rides} drivers + {n_rides} passengers in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        offers = await setup_rides(stack, riders, args.setup_concurrency)
        print(
            f"{n_rides} x (online, request ride, accept) over HTTP in {time.monotonic() - t:.1f} s "
            f"(concurrency {args.setup_concurrency}; offers written by the bench: {offers})"
        )

        tally = Tally()
        conn = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=10)
        async with aiohttp.ClientSession(base, connector=conn, timeout=timeout) as http:
            gate = asyncio.Semaphore(args.open_concurrency)

            # warm-up: a few streams opened and closed, so one-time costs are not counted
            warm = Tally()
            warm_riders = [riders[i % n_rides] for i in range(20)]  # one ride may be all
            warm_tasks = [
                asyncio.create_task(
                    sse_client(
                        http, f"{API}/rides/{r.ride_id}/events", r.passenger_token, warm, gate, 20
                    )
                )
                for r in warm_riders
            ]
            await asyncio.wait_for(warm.all_ready.wait(), 30)
            for task in warm_tasks:
                task.cancel()
            await asyncio.gather(*warm_tasks, return_exceptions=True)
            await asyncio.sleep(1.0)

            # --- memory per idle client ---------------------------------------------------
            rss_before = rss_kb(api_pid)
            t = time.monotonic()
            clients = [
                asyncio.create_task(
                    sse_client(
                        http,
                        f"{API}/rides/{riders[i % n_rides].ride_id}/events",
                        riders[i % n_rides].passenger_token,
                        tally,
                        gate,
                        n_clients,
                    )
                )
                for i in range(n_clients)
            ]
            try:
                await asyncio.wait_for(tally.all_ready.wait(), 60)
            except TimeoutError:
                print(
                    f"!! only {tally.ready}/{n_clients} streams opened; "
                    f"errors: {tally.open_errors[:5]}"
                )
                return 1
            opened_s = time.monotonic() - t
            await asyncio.sleep(2.0)
            rss_after = rss_kb(api_pid)
            fds = len(os.listdir(f"/proc/{api_pid}/fd"))
            per_client_kb = (rss_after - rss_before) / n_clients

            # --- delivery latency ------------------------------------------------------------
            m0 = metrics(stack)
            with cpu_meter(api=api_pid, redis=stack.redis.pid) as cpu:
                t = time.monotonic()
                sent = await pinger(base, riders, args.rate, args.duration, tally)
                ping_s = time.monotonic() - t
            expected = len(tally.sent)
            deadline = time.monotonic() + 5
            while len(tally.delivered_keys) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            m1 = metrics(stack)
            rss_end = proc_stat(api_pid)[1]

            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)

    lat = sorted(tally.latencies)
    post = sorted(tally.post_latencies)
    never = expected - len(tally.delivered_keys)
    missing = expected * per_ride - len(lat)
    banner("results")
    server_counted = status_delta(m0, m1, API + "/drivers/me/location")
    print(
        f"streams opened: {tally.ready}/{n_clients} in {opened_s:.1f} s; "
        f"errors: {len(tally.open_errors)} {tally.open_errors[:3]}"
    )
    print(
        f"API process: RSS {rss_before / 1024:.1f} MB before, {rss_after / 1024:.1f} MB with "
        f"{n_clients} idle streams ({fds} open fds)"
    )
    print(
        f"pings: {sent} POSTs in {ping_s:.1f} s ({sent / ping_s:.0f}/s); "
        f"client-seen statuses {tally.post_status}; server-counted {server_counted}"
    )
    if tally.post_errors:
        print(f"  !! ping errors: {tally.post_errors[:5]}")
    print(f"  POST latency p50 {ms(post, 50)} ms, p99 {ms(post, 99)} ms, max {ms(post, 100)} ms")
    print(
        f"  CPU (cores busy) while pinging: api {cpu['api'] / ping_s:.2f}, "
        f"redis {cpu['redis'] / ping_s:.2f}, whole machine {cpu[MACHINE] / ping_s:.2f} "
        f"(this client process included)"
    )
    print(
        f"location events: {len(lat)} delivered for {expected} accepted pings x {per_ride} "
        f"client(s) (expected {expected * per_ride}); deliveries missing: {missing}; "
        f"pings delivered to no client: {never}; unmatched events: {tally.unmatched}; "
        f"other events: {tally.other_events}"
    )
    print(f"  streams that ended early: {tally.ended}; API RSS at the end {rss_end / 1024:.1f} MB")

    banner("summary")
    p99 = percentile(lat, 99) * 1000
    print(
        f"ping-to-SSE latency with {n_clients} subscribers: p50 {ms(lat, 50)} ms, "
        f"p90 {ms(lat, 90)} ms, p99 {ms(lat, 99)} ms, max {ms(lat, 100)} ms   "
        f"(target p99 < 50 ms: {'PASS' if p99 < 50 else 'FAIL'})"
    )
    print(
        f"memory per idle SSE client: {per_client_kb:.1f} KB   "
        f"(target < 50 KB: {'PASS' if per_client_kb < 50 else 'FAIL'})"
    )
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--clients-per-ride", type=int, default=1)
    ap.add_argument("--rate", type=float, default=200, help="pings per second")
    ap.add_argument("--duration", type=float, default=10, help="seconds of pinging")
    ap.add_argument("--setup-concurrency", type=int, default=8)
    ap.add_argument("--open-concurrency", type=int, default=100)
    args = ap.parse_args()
    try:
        import uvloop

        return uvloop.run(run(args))
    except ImportError:
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
