"""Dispatch latency: ride request -> first offer to a driver -> accepted, 1,000 drivers online.

    .venv/bin/python bench/dispatch.py [--drivers 1000] [--rides 200] [--rate 10]
                                       [--sequential 100]

Stack: Redis, PostgreSQL (throwaway cluster, fsync off), one uvicorn API process and one
Celery worker (`-c 2`, queues payments,notifications,default; no beat), all on 127.0.0.1.
Users are inserted straight into the database (one shared Argon2 hash) and their access
tokens minted with the server's secret; every driver goes online and pings once from a
random point within 3 km of the centre.

Two measured phases, each ride by its own passenger from a random pickup in the same area:

* sequential: one ride at a time (the next request after the previous accept), the
  latency floor with nothing else in flight;
* paced: requests issued open-loop at `--rate` per second, whatever is still in flight.

The bench process SSUBSCRIBEs to every driver's event channel and times, from just before each
`POST /api/v1/rides` is sent, the first `offer` event of that ride; the offered driver then
accepts at once (`POST /rides/{id}/accept`) and the 200 is timed too. All times come from one
monotonic clock in one event loop. Pub/sub timing excludes the SSE hop to the driver app
(API subscriber -> SSE frame), which bench/sse.py measures.

Where the time goes comes from timestamps the stack leaves anyway: the ride row's
`created_at` (API handler), Celery's task events (`task-sent` by the API after commit,
`task-received` by the worker, `task-started` in the pool child, `task-succeeded`), the
offers' `created_at` (the wave's `now` in `dispatch.advance`: after the ride row lock,
before the candidate search) and the outbox row's `completed_at` (end of the task's work,
before its commit): all wall clock, one machine. A replay of the worker's Redis candidate
search from the bench shows how much of the task that search is.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import redis.asyncio as aioredis
from _harness import (  # noqa: I001 - also puts the checkout on sys.path
    CLK_TCK,
    MACHINE,
    ROOT,
    VENV_BIN,
    free_port,
    launcher,
    log_problems,
    machine,
    machine_busy_s,
    percentile,
    stop,
    uvicorn_flags,
    wait_http,
    wait_redis,
)

from infra.live.keys import Keys, channel, driver_stream
from infra.live.positions import nearest

API = "/api/v1"
CENTRE = (52.52, 13.405)
AREA_M = 3_000.0
HTTP_CONCURRENCY = 50
OFFER_TIMEOUT_S = 10.0
PHASE_BUDGET_S = 60.0  # a phase issues no new ride after this long
RUN_LIMIT_S = 170  # the whole run is cut (and the stack stopped) after this long
FRESH_PING_S = 30.0  # re-ping everybody before a phase if the last round is older than this
DB_NAME = "ridehail_bench"
SLOW_SQL_MS = 20  # statements slower than this are logged by PostgreSQL and summarised

SEED = r"""
import json, sys
from infra.db import session_scope
from infra.models import User
from infra.security import hash_password, issue_token

drivers, passengers = int(sys.argv[1]), int(sys.argv[2])
shared = hash_password("bench-password-1")
out = {"drivers": [], "passengers": []}
with session_scope() as session:
    for role, count, key in (("driver", drivers, "drivers"),
                             ("passenger", passengers, "passengers")):
        for n in range(count):
            user = User(email=f"dispatch-{role}-{n}@example.com", name=f"bench {role} {n}",
                        role=role, password_hash=shared)
            session.add(user)
            out[key].append({"id": str(user.id),
                             "token": issue_token(user.id, role, "access", 3 * 3600)})
json.dump(out, sys.stdout)
"""


# --- the stack -------------------------------------------------------------------------------
@dataclass
class Stack:
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ridehail-dispatch-")))
    pgdata: str = ""
    env: dict[str, str] = field(default_factory=dict)
    redis_port: int = 0
    pg_port: int = 0
    api_url: str = ""
    postgres: launcher.Postgres | None = None

    def start_redis(self) -> None:
        self.redis_port = free_port()
        self.procs["redis"] = launcher.start_redis(
            self.redis_port,
            data_dir=self.tmp,
            extra=["--slowlog-log-slower-than", "2000", "--slowlog-max-len", "1000"],
            log=self.tmp / "redis.log",
        )
        wait_redis(self.redis_port)

    def start_postgres(self) -> None:
        self.postgres = launcher.Postgres(
            database=DB_NAME,
            settings=[f"log_min_duration_statement={SLOW_SQL_MS}"],
            log=self.tmp / "postgres.log",
        ).start()
        self.pg_port = self.postgres.port
        self.pgdata = self.postgres.datadir
        assert self.postgres.proc is not None
        self.procs["postgres"] = self.postgres.proc  # counted in the CPU table

    def pg_dsn(self, db: str = DB_NAME) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/{db}"

    def configure(self) -> None:
        self.env = {
            **os.environ,
            "RIDEHAIL_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "RIDEHAIL_DATA_DIR": str(self.tmp),
            "RIDEHAIL_DATABASE_URL": (
                f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/{DB_NAME}"
            ),
            "RIDEHAIL_ENVIRONMENT": "development",
            "RIDEHAIL_PING_RATE_LIMIT": "1000000",
            "RIDEHAIL_LOGIN_ATTEMPTS_PER_MINUTE": "1000000",
        }
        launcher.run_migrations(self.env)

    def seed(self, drivers: int, passengers: int) -> dict[str, list[dict[str, str]]]:
        out = subprocess.run(
            [str(VENV_BIN / "python"), "-c", SEED, str(drivers), str(passengers)],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        return json.loads(out.stdout)  # type: ignore[no-any-return]

    def start_servers(self) -> None:
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.procs["api"] = launcher.start_api(
            port,
            env=self.env,
            log=self.tmp / "api.log",
            extra=["--log-level", "warning", *uvicorn_flags()],
            wait=False,
        )
        self.procs["worker"] = launcher.start_worker(
            env=self.env,
            log=self.tmp / "worker.log",
            extra=["--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
        )
        wait_http(self.api_url + "/healthz", proc=self.procs["api"])

    def close(self) -> None:
        for name in ("api", "worker", "redis"):
            stop(self.procs.get(name), grace_s=10.0)
        if self.postgres is not None:
            self.postgres.stop()
        problems = [(n, line) for n in ("api", "worker") for line in log_problems(self.log(n))]
        if problems:
            print(f"\n!! server logs had {len(problems)} error/warning lines (first 30):")
            for name, line in problems[:30]:
                print(f"   [{name}] {line}")
            keep = Path(tempfile.gettempdir()) / f"{self.tmp.name}-logs"
            keep.mkdir(exist_ok=True)
            for n in ("api", "worker"):
                if self.log(n).exists():
                    shutil.copy(self.log(n), keep / f"{n}.log")
            print(f"   logs kept in {keep}")
        shutil.rmtree(self.tmp, ignore_errors=True)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each started process and all its live descendants
        (postgres: postmaster and backends; worker: main process and pool children), and
        under "machine" the busy CPU seconds of the whole machine (other load shows)."""
        parent: dict[int, int] = {}
        used: dict[int, float] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry)] = int(fields[1])
            used[int(entry)] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        children: dict[int, list[int]] = {}
        for pid, ppid in parent.items():
            children.setdefault(ppid, []).append(pid)
        out: dict[str, float] = {}
        for name, proc in self.procs.items():
            total, todo = 0.0, [proc.pid]
            while todo:
                pid = todo.pop()
                total += used.get(pid, 0.0)
                todo.extend(children.get(pid, ()))
            out[name] = total
        me = os.times()
        out["bench"] = me.user + me.system
        out[MACHINE] = machine_busy_s()
        return out

    def slow_report(self) -> None:
        """Statements PostgreSQL logged as slow, and Redis commands in its slow log."""
        pg_log = self.log("postgres")
        slow = []
        if pg_log.exists():
            for line in pg_log.read_text(errors="replace").splitlines():
                m = re.search(r"duration: ([\d.]+) ms\s+(?:statement|execute [^:]*): (.*)", line)
                if m:
                    slow.append((float(m.group(1)), m.group(2)))
        print(f"\nPostgreSQL statements slower than {SLOW_SQL_MS} ms (whole run): {len(slow)}")
        for dur, stmt in sorted(slow, reverse=True)[:5]:
            print(f"    {dur:7.1f} ms  {stmt[:110]}")
        import redis as sync_redis

        r = sync_redis.Redis(port=self.redis_port, decode_responses=True)
        try:
            entries = r.slowlog_get(1000)
        finally:
            r.close()
        print(f"Redis commands slower than 2 ms (whole run): {len(entries)}")
        for e in sorted(entries, key=lambda e: -e["duration"])[:5]:
            print(f"    {e['duration'] / 1000:7.1f} ms  {str(e['command'])[:110]}")

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"


# --- geometry --------------------------------------------------------------------------------
def random_point(rng: random.Random, radius_m: float = AREA_M) -> dict[str, float]:
    r = radius_m * math.sqrt(rng.random())
    a = rng.random() * 2 * math.pi
    lat = CENTRE[0] + r * math.cos(a) / 111_320.0
    lng = CENTRE[1] + r * math.sin(a) / (111_320.0 * math.cos(math.radians(CENTRE[0])))
    return {"lat": round(lat, 6), "lng": round(lng, 6)}


# --- bookkeeping -----------------------------------------------------------------------------
@dataclass
class RideRecord:
    phase: str
    t0: float  # monotonic, just before the POST is sent
    w0: float  # wall clock at t0
    post_s: float | None = None
    post_status: int = 0
    ride_id: str = ""
    offer_s: float | None = None
    driver_id: str = ""
    accept_s: float | None = None
    accept_status: int = 0
    error: str = ""


@dataclass
class Offers:
    """Offer events seen on pub/sub: the first per ride resolves that ride's future."""

    loop: asyncio.AbstractEventLoop
    first: dict[str, asyncio.Future[tuple[float, str]]] = field(default_factory=dict)
    received: int = 0
    per_ride: dict[str, int] = field(default_factory=dict)
    other_events: dict[str, int] = field(default_factory=dict)

    def future(self, ride_id: str) -> asyncio.Future[tuple[float, str]]:
        fut = self.first.get(ride_id)
        if fut is None:
            fut = self.first[ride_id] = self.loop.create_future()
        return fut

    def seen(self, driver_id: str, payload: str) -> None:
        now = time.monotonic()
        parts = payload.split("\x1f", 3)  # id, the entry before it, event, data
        if len(parts) != 4:
            return
        _event_id, _prev, event, data = parts
        if event != "offer":
            self.other_events[event] = self.other_events.get(event, 0) + 1
            return
        self.received += 1
        ride_id = json.loads(data)["ride_id"]
        self.per_ride[ride_id] = self.per_ride.get(ride_id, 0) + 1
        fut = self.future(ride_id)
        if not fut.done():
            fut.set_result((now, driver_id))


@dataclass
class TaskEvents:
    """Celery task events of `dispatch.advance` (wall clock), by ride id."""

    by_task: dict[str, dict[str, float]] = field(default_factory=dict)
    ride_of_task: dict[str, str] = field(default_factory=dict)
    undecodable: int = 0

    def seen(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body).decode()
            event = json.loads(body)
        except (ValueError, KeyError, TypeError):
            self.undecodable += 1
            return
        events = event if isinstance(event, list) else [event]  # batched or single
        for ev in events:
            if not isinstance(ev, dict) or "uuid" not in ev or "timestamp" not in ev:
                continue
            kind = str(ev.get("type", ""))
            if ev.get("name") not in (None, "dispatch.advance"):
                continue
            m = re.search(r"ride_id['\"]?\s*:\s*['\"]([0-9a-f-]{36})", str(ev.get("kwargs", "")))
            if m:
                self.ride_of_task[ev["uuid"]] = m.group(1)
            self.by_task.setdefault(ev["uuid"], {}).setdefault(kind, float(ev["timestamp"]))

    def by_ride(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for task_id, ride_id in self.ride_of_task.items():
            out.setdefault(ride_id, {}).update(self.by_task.get(task_id, {}))
        return out


async def listen(
    url: str,
    offers: Offers,
    tasks: TaskEvents,
    subscribed: asyncio.Event,
    driver_ids: list[str],
) -> None:
    """Celery's task events (PSUBSCRIBE) and every driver's event channel: sharded
    (SSUBSCRIBE), as the API's own subscriber hears them."""
    r = aioredis.Redis.from_url(url, decode_responses=True)
    pubsub = r.pubsub()
    try:
        await pubsub.psubscribe("/0.celeryev/task.*")
        channels = {channel(driver_stream(d)): d for d in driver_ids}
        await pubsub.ssubscribe(*channels)
        subscribed.set()
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None or msg.get("type") not in ("pmessage", "smessage"):
                continue
            chan, data = msg["channel"], msg["data"]
            if msg["type"] == "smessage":
                offers.seen(channels[chan], data)
            else:
                tasks.seen(data)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
        await r.aclose()


# --- HTTP ------------------------------------------------------------------------------------
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def post(http: aiohttp.ClientSession, url: str, token: str, body: Any) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=auth(token)) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text) if text else None
        except ValueError:
            return resp.status, text


async def drivers_online(
    http: aiohttp.ClientSession,
    base: str,
    drivers: list[dict[str, str]],
    spots: dict[str, dict[str, float]],
    set_status: bool,
) -> dict[str, int]:
    """Status online (first round) and one fresh ping per driver; status counts by call."""
    sem = asyncio.Semaphore(HTTP_CONCURRENCY)
    counts: dict[str, int] = {}

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    async def one(d: dict[str, str]) -> None:
        async with sem:
            try:
                if set_status:
                    st, answer = await post(
                        http, base + API + "/drivers/me/status", d["token"], {"status": "online"}
                    )
                    count(f"status {st}" + ("" if st == 200 else f" {answer}"[:120]))
                body = {**spots[d["id"]], "recorded_at": round(time.time(), 3)}
                st, answer = await post(http, base + API + "/drivers/me/location", d["token"], body)
                count(f"location {st}" + ("" if st == 202 else f" {answer}"[:120]))
            except (aiohttp.ClientError, TimeoutError) as exc:
                count(f"{type(exc).__name__}: {exc}"[:120])

    await asyncio.gather(*(one(d) for d in drivers))
    if counts.get("location 202", 0) < 0.9 * len(drivers):
        raise RuntimeError(f"drivers could not go online / ping: {counts}")
    return counts


async def one_ride(
    http: aiohttp.ClientSession,
    base: str,
    offers: Offers,
    driver_tokens: dict[str, str],
    passenger: dict[str, str],
    rec: RideRecord,
    rng: random.Random,
) -> None:
    body = {"pickup": random_point(rng), "dropoff": random_point(rng), "payment": "cash"}
    rec.t0, rec.w0 = time.monotonic(), time.time()
    try:
        status, answer = await post(http, base + API + "/rides", passenger["token"], body)
        rec.post_s, rec.post_status = time.monotonic() - rec.t0, status
        if status != 201:
            rec.error = f"POST /rides {status}: {answer}"[:300]
            return
        rec.ride_id = answer["id"]
        try:
            t_offer, driver_id = await asyncio.wait_for(
                asyncio.shield(offers.future(rec.ride_id)), OFFER_TIMEOUT_S
            )
        except TimeoutError:
            rec.error = f"no offer within {OFFER_TIMEOUT_S:.0f} s"
            return
        rec.offer_s, rec.driver_id = t_offer - rec.t0, driver_id
        status, answer = await post(
            http, f"{base}{API}/rides/{rec.ride_id}/accept", driver_tokens[driver_id], None
        )
        rec.accept_status = status
        if status == 200:
            rec.accept_s = time.monotonic() - rec.t0
        else:
            rec.error = f"accept {status}: {answer}"[:300]
    except (aiohttp.ClientError, TimeoutError) as exc:
        rec.error = f"{type(exc).__name__}: {exc}"[:300]


async def run_phase(
    http: aiohttp.ClientSession,
    base: str,
    offers: Offers,
    driver_tokens: dict[str, str],
    passengers: list[dict[str, str]],
    phase: str,
    rate: float,
    rng: random.Random,
) -> list[RideRecord]:
    """rate 0: one ride at a time; otherwise open-loop at `rate` requests per second. No
    new ride after `PHASE_BUDGET_S` (the rides not issued are left out of the figures)."""
    records: list[RideRecord] = []
    start_at = time.monotonic()
    if rate <= 0:
        for p in passengers:
            if time.monotonic() - start_at > PHASE_BUDGET_S:
                break
            records.append(RideRecord(phase, 0.0, 0.0))
            await one_ride(http, base, offers, driver_tokens, p, records[-1], rng)
        return records
    tasks = []
    for n, p in enumerate(passengers):
        if time.monotonic() - start_at > PHASE_BUDGET_S:
            break
        rec = RideRecord(phase, 0.0, 0.0)
        records.append(rec)
        delay = start_at + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one_ride(http, base, offers, driver_tokens, p, rec, rng)))
    await asyncio.gather(*tasks)
    return records


# --- figures ---------------------------------------------------------------------------------
def ms(values: list[float]) -> str:
    v = sorted(values)
    if not v:
        return "n/a"
    return (
        f"p50 {percentile(v, 50) * 1000:7.1f}  p99 {percentile(v, 99) * 1000:7.1f}  "
        f"max {v[-1] * 1000:7.1f} ms"
    )


def report_phase(
    label: str, records: list[RideRecord], wanted: int, offers_seen: int, wall_s: float
) -> None:
    print(f"\n== {label}: {len(records)} rides in {wall_s:.1f} s ==")
    if len(records) < wanted:
        print(f"  !! only {len(records)} of {wanted} rides issued within {PHASE_BUDGET_S:.0f} s")
    ok = [r for r in records if r.accept_s is not None]
    print(
        f"  rides {len(records)}, POST 201 {sum(r.post_status == 201 for r in records)}, "
        f"first offers {sum(r.offer_s is not None for r in records)}, "
        f"offer events received for them {offers_seen}, accepted 200 {len(ok)}"
    )
    print(f"  POST /rides latency         {ms([r.post_s for r in records if r.post_s])}")
    print(f"  request -> first offer      {ms([r.offer_s for r in records if r.offer_s])}")
    print(f"  request -> accepted (200)   {ms([r.accept_s for r in ok])}")
    print(
        "  first offer -> accepted     "
        + ms([r.accept_s - r.offer_s for r in ok if r.offer_s is not None])
    )
    errors: dict[str, int] = {}
    for r in records:
        if r.error:
            errors[r.error] = errors.get(r.error, 0) + 1
    for err, n in sorted(errors.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  !! {n} x {err}")


def sql_marks(dsn: str) -> dict[str, dict[str, float]]:
    """Per ride: the API handler's `now` (rides.created_at), the first wave's `now`
    (offers.created_at: taken after the ride row lock, before the candidate search), the end
    of the task's work (outbox.completed_at, set before its commit), and offers made."""
    query = """
        SELECT r.id::text, r.created_at, o.first_offer, o.n, ob.completed_at, ob.attempts
        FROM rides r
        LEFT JOIN (SELECT ride_id, min(created_at) AS first_offer, count(*) AS n
                   FROM offers GROUP BY ride_id) o ON o.ride_id = r.id
        LEFT JOIN outbox ob ON ob.task = 'dispatch.advance'
                           AND ob.task_kwargs->>'ride_id' = r.id::text
    """
    out: dict[str, dict[str, float]] = {}

    def ts(v: datetime | None) -> float | None:
        return v.timestamp() if v is not None else None

    with psycopg.connect(dsn) as conn:
        for rid, created, first_offer, n, completed, attempts in conn.execute(query):
            row = {
                "ride_created": ts(created),
                "offer_created": ts(first_offer),
                "task_done": ts(completed),
                "offers": float(n or 0),
                "attempts": float(attempts or 0),
            }
            out[rid] = {k: v for k, v in row.items() if v is not None}
    return out


def report_breakdown(
    records: list[RideRecord], sql: dict[str, dict[str, float]], tasks: dict[str, dict[str, float]]
) -> None:
    """Medians (and p99) of each step, from the stack's own wall-clock timestamps."""
    steps = [
        ("bench POST sent -> handler's `now` (HTTP, auth, session)", "w0", "ride_created"),
        ("handler's `now` -> task-sent (SQL, commit, send)", "ride_created", "task-sent"),
        ("task-sent -> task-received (broker hop)", "task-sent", "task-received"),
        ("task-received -> task-started (pool handoff)", "task-received", "task-started"),
        ("task-started -> wave `now` (session, ride lock)", "task-started", "offer_created"),
        ("wave `now` -> task work done (search, INSERTs)", "offer_created", "task_done"),
        ("task work done -> task-succeeded (commit, publish)", "task_done", "task-succeeded"),
        ("task work done -> offer seen by bench (commit, pub)", "task_done", "offer_seen"),
        ("POST answered -> offer seen by bench", "post_done", "offer_seen"),
        ("offer seen -> accept answered", "offer_seen", "accepted"),
    ]
    deltas: dict[str, list[float]] = {label: [] for label, _, _ in steps}
    slowest: tuple[float, int, dict[str, float]] | None = None
    for n, r in enumerate(records):
        if not r.ride_id:
            continue
        marks = {"w0": r.w0, **sql.get(r.ride_id, {}), **tasks.get(r.ride_id, {})}
        if r.post_s is not None:
            marks["post_done"] = r.w0 + r.post_s
        if r.offer_s is not None:
            marks["offer_seen"] = r.w0 + r.offer_s
        if r.accept_s is not None:
            marks["accepted"] = r.w0 + r.accept_s
        for label, a, b in steps:
            if a in marks and b in marks:
                deltas[label].append(marks[b] - marks[a])
        if r.offer_s is not None and (slowest is None or r.offer_s > slowest[0]):
            slowest = (r.offer_s, n, marks)
    print(
        "  where the time goes (wall-clock marks of API, Celery events, SQL rows; task-sent is "
        "stamped after the publish, so the broker hop reads a little short):"
    )
    for label, _, _ in steps:
        v = sorted(deltas[label])
        if v:
            print(
                f"    {label:<56} p50 {percentile(v, 50) * 1000:7.1f}  "
                f"p99 {percentile(v, 99) * 1000:7.1f} ms  (n={len(v)})"
            )
        else:
            print(f"    {label:<56} n/a")
    if slowest is not None:
        offer_s, n, marks = slowest
        order = ["post_done", "ride_created", "task-sent", "task-received", "task-started"]
        order += ["offer_created", "task_done", "offer_seen", "task-succeeded", "accepted"]
        seq = ", ".join(f"{k} +{(marks[k] - marks['w0']) * 1000:.1f}" for k in order if k in marks)
        print(
            f"    slowest first offer: ride #{n} of the phase (sent at unix {marks['w0']:.3f}), "
            f"{offer_s * 1000:.1f} ms; ms after sending: {seq}"
        )
    waves = [sql[r.ride_id].get("offers", 0) for r in records if r.ride_id in sql]
    retried = sum(1 for r in records if sql.get(r.ride_id, {}).get("attempts", 0) > 0)
    if waves:
        print(
            f"    offers per ride: mean {sum(waves) / len(waves):.2f}; outbox re-sends: {retried}"
        )


def probe_search(redis_port: int, rng: random.Random, n: int = 30) -> None:
    """The Redis part of the worker's candidate search (`infra.offers.candidates_near`),
    replayed from the bench: the cells' GEOSEARCHes (first wave radius, COUNT 200) then
    one pipeline of 4 commands per driver found."""
    import redis as sync_redis

    r = sync_redis.Redis(port=redis_port, decode_responses=True)
    geo, full, found_n = [], [], []
    try:
        for _ in range(n):
            p = random_point(rng)
            t = time.perf_counter()
            found = nearest(r, p["lat"], p["lng"], 2_000, 200)
            geo.append(time.perf_counter() - t)
            pipe = r.pipeline(transaction=False)
            for driver_id, _dist in found:
                pipe.hmget(Keys.of(Keys.DRIVER_STATE, driver_id), "status", "ride_id")
                pipe.hget(Keys.of(Keys.POSITION, driver_id), "ts")
                pipe.exists(Keys.of(Keys.DRIVER_OFFER, driver_id))
                pipe.hmget(Keys.of(Keys.OFFER_STATS, driver_id), "offered", "declined", "expired")
            pipe.execute()
            full.append(time.perf_counter() - t)
            found_n.append(len(found))
    finally:
        r.close()
    print(
        f"\nprobe of the worker's Redis candidate search ({n} random pickups, sync client in "
        f"the bench): drivers found p50 {percentile(sorted(found_n), 50)}; GEOSEARCH "
        f"p50 {percentile(sorted(geo), 50) * 1000:.1f} ms; GEOSEARCH + 4-per-driver pipeline "
        f"p50 {percentile(sorted(full), 50) * 1000:.1f} ms, "
        f"p99 {percentile(sorted(full), 99) * 1000:.1f} ms"
    )


# --- main ------------------------------------------------------------------------------------
async def measure(args: argparse.Namespace, stack: Stack, users: dict[str, Any]) -> None:
    rng = random.Random(42)
    loop = asyncio.get_running_loop()
    drivers, passengers = users["drivers"], users["passengers"]
    driver_tokens = {d["id"]: d["token"] for d in drivers}
    spots = {d["id"]: random_point(rng) for d in drivers}
    offers = Offers(loop)
    tasks = TaskEvents()
    subscribed = asyncio.Event()
    listener = asyncio.create_task(
        listen(
            f"redis://127.0.0.1:{stack.redis_port}/0",
            offers,
            tasks,
            subscribed,
            [d["id"] for d in drivers],
        )
    )
    connector = aiohttp.TCPConnector(limit=HTTP_CONCURRENCY + 50)
    timeout = aiohttp.ClientTimeout(total=15)
    base = stack.api_url
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            t = time.monotonic()
            counts = await drivers_online(http, base, drivers, spots, set_status=True)
            pinged = time.monotonic()
            print(f"drivers online + 1 ping each: {pinged - t:.1f} s  {counts}")

            # warm-up: worker start, both pool children, connection pools; not counted
            n_warm = args.warmup
            warm = await asyncio.gather(
                *(
                    one_ride_wrapped(http, base, offers, driver_tokens, p, rng, "warm-up")
                    for p in passengers[:n_warm]
                )
            )
            warm_ok = sum(r.accept_s is not None for r in warm)
            warm_err = {r.error for r in warm if r.error}
            print(f"warm-up: {warm_ok}/{n_warm} rides accepted {sorted(warm_err) or ''}")
            if warm_ok == 0:
                raise RuntimeError("dispatch does not work: no warm-up ride was offered")

            rest = passengers[n_warm:]
            phases = []
            if args.sequential:
                phases.append(("sequential (one ride at a time)", 0.0, rest[: args.sequential]))
                rest = rest[args.sequential :]
            if args.rides:
                phases.append((f"paced ({args.rate:g} requests/s, open loop)", args.rate, rest))
            all_records: list[list[RideRecord]] = []
            for label, rate, group in phases:
                if time.monotonic() - pinged > FRESH_PING_S:
                    t = time.monotonic()
                    counts = await drivers_online(http, base, drivers, spots, set_status=False)
                    pinged = time.monotonic()
                    print(f"re-ping all drivers: {pinged - t:.1f} s  {counts}")
                cpu0 = stack.cpu()
                t = time.monotonic()
                records = await run_phase(
                    http, base, offers, driver_tokens, group, label, rate, rng
                )
                wall = time.monotonic() - t
                await asyncio.sleep(0.3)  # late offer events of the phase's last waves
                offers_seen = sum(offers.per_ride.get(r.ride_id, 0) for r in records)
                report_phase(label, records, len(group), offers_seen, wall)
                cpu = {n: v - cpu0.get(n, 0.0) for n, v in stack.cpu().items()}
                ours = sum(v for n, v in cpu.items() if n != MACHINE)
                cpu["other"] = max(0.0, cpu[MACHINE] - ours)
                print(
                    "  CPU s used in the phase (process trees; machine = all busy CPU, other = the "
                    "machine minus the stack and this bench): "
                    + ", ".join(f"{n} {v:.2f}" for n, v in cpu.items())
                    + f", of {(os.cpu_count() or 1) * wall:.1f} core-s available"
                )
                all_records.append(records)
        await asyncio.sleep(0.5)
        sql = sql_marks(stack.pg_dsn())
        by_ride = tasks.by_ride()
        for (label, _, _), records in zip(phases, all_records, strict=True):
            print(f"\n-- breakdown, {label} --")
            report_breakdown(records, sql, by_ride)
        probe_search(stack.redis_port, rng)
        stack.slow_report()
        if not by_ride:
            print(f"  (no Celery task events decoded; {tasks.undecodable} undecodable)")
        print(
            f"\noffer events received in all (warm-up included): {offers.received}; "
            f"other driver-stream events: {offers.other_events}"
        )
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener


async def one_ride_wrapped(
    http: aiohttp.ClientSession,
    base: str,
    offers: Offers,
    driver_tokens: dict[str, str],
    passenger: dict[str, str],
    rng: random.Random,
    phase: str,
) -> RideRecord:
    rec = RideRecord(phase, 0.0, 0.0)
    await one_ride(http, base, offers, driver_tokens, passenger, rec, rng)
    return rec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drivers", type=int, default=1000)
    parser.add_argument("--rides", type=int, default=200, help="rides of the paced phase")
    parser.add_argument("--rate", type=float, default=10.0, help="paced phase requests/s")
    parser.add_argument("--sequential", type=int, default=100, help="rides one at a time")
    parser.add_argument("--warmup", type=int, default=6)
    args = parser.parse_args()
    began = time.monotonic()
    print(f"dispatch bench: {machine()}")
    print(
        f"{args.drivers} drivers online within {AREA_M / 1000:.0f} km of {CENTRE}; wave size "
        f"{os.environ.get('RIDEHAIL_DISPATCH_WAVE_SIZE', '3 (default)')}; "
        "1 API process, 1 Celery worker -c 2, PostgreSQL, Redis"
    )

    def out_of_time(_sig: int, _frame: Any) -> None:
        raise TimeoutError(f"the run took longer than {RUN_LIMIT_S} s: stopped")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(RUN_LIMIT_S)
    stack = Stack()
    try:
        stack.start_redis()
        stack.start_postgres()
        stack.configure()
        t = time.monotonic()
        users = stack.seed(args.drivers, args.warmup + args.sequential + args.rides)
        print(f"seeded {args.drivers} drivers + passengers in {time.monotonic() - t:.1f} s")
        stack.start_servers()
        print(f"stack up after {time.monotonic() - began:.1f} s")
        asyncio.run(measure(args, stack, users))
        print(
            "\nnote: offers are timed on Redis pub/sub in the bench process; this excludes the "
            "SSE hop to the driver app (measured separately by bench/sse.py)."
        )
    finally:
        signal.alarm(0)
        stack.close()
        print(f"\ntotal run {time.monotonic() - began:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
