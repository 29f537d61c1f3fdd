"""`ridehail simulate`: a fleet against a running stack, over HTTP as the apps speak it.

N drivers go online and move along plausible paths (a wander while idle, a straight drive
with some noise to the pickup and the dropoff), pinging at the rate the server asks for
(`next_ping_in_s`) in the formats real tracking SDKs send: the native single ping and
batch, react-native-background-geolocation's body, and OsmAnd / Traccar Client's query
with a device key. They take offers from their SSE stream (`/drivers/me/events`), decline
a few, accept, drive, complete, take the cash, and rate the passenger.

M passengers register a push token, save a card the way the device does (a SetupIntent's
client secret confirmed at Stripe with the publishable key), request rides paid in cash
or by card, follow their driver on the ride's SSE stream, cancel some, and rate the driver.

A progress line runs on stderr; at the end a summary: rides completed, cancelled, expired;
pings sent and accepted; request-to-offer and ping-to-SSE latencies seen by the clients
(p50/p99); card payments captured and cash rides settled; pushes delivered; errors by kind.
It is the demo after `make run` and the load generator of `bench/`. Exit status 1 when a
ride ended unsettled or an unexpected error happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

CENTER = (52.520, 13.405)  # Berlin
EARTH_M = 6_371_000.0
DRIVE_MS = 15.0  # ~54 km/h
PASSWORD = "simulated-pass-1"
ENDED = ("completed", "cancelled", "no_show", "expired")


def now_iso(ts: float | None = None) -> str:
    return (
        datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def offset(lat: float, lng: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / EARTH_M)
    dlng = math.degrees(east_m / (EARTH_M * math.cos(math.radians(lat))))
    return lat + dlat, lng + dlng


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    north = math.radians(b[0] - a[0]) * EARTH_M
    east = math.radians(b[1] - a[1]) * EARTH_M * math.cos(math.radians(a[0]))
    return math.hypot(north, east)


def bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    north = b[0] - a[0]
    east = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return (math.degrees(math.atan2(east, north)) + 360) % 360


def around(rng: random.Random, radius_m: float) -> tuple[float, float]:
    r = radius_m * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    return offset(*CENTER, r * math.cos(a), r * math.sin(a))


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    requested: int = 0
    completed: int = 0
    cancelled: int = 0
    expired: int = 0
    pings_sent: int = 0
    pings_accepted: int = 0
    ratings: int = 0
    declines: int = 0
    request_to_offer: list[float] = field(default_factory=list)
    ping_to_sse: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    # each error with when it happened (unix s): a checker tells those inside an outage it
    # caused from the rest
    error_log: list[tuple[float, str]] = field(default_factory=list)
    card_rides: list[tuple[str, User]] = field(default_factory=list)  # id, passenger
    relogins: int = 0  # a refresh refused (its answer lost to an outage): signed in again
    cash_settled: int = 0
    cash_rides: int = 0
    requested_at: dict[str, float] = field(default_factory=dict)
    # a ride's driver's tracking format: OsmAnd's timestamps are whole seconds, too coarse
    # for a latency in milliseconds, so those rides' positions are not timed
    ride_format: dict[str, str] = field(default_factory=dict)
    # what a checker needs: each ride's payment, and the pings the server accepted while
    # the ride was under way ([t, lat, lng], `--record`)
    ride_payment: dict[str, str] = field(default_factory=dict)
    trip_pings: dict[str, list[list[float]]] = field(default_factory=dict)
    payout_accounts: int = 0


@dataclass
class User:
    id: str
    email: str
    token: str
    refresh: str
    role: str
    refreshing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Sim:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.base = args.base_url.rstrip("/")
        self.api = f"{self.base}/api/v1"
        self.rng = random.Random(args.seed)
        self.stats = Stats()
        self.deadline = time.monotonic() + args.minutes * 60
        self.hard = self.deadline + args.grace_s
        self.finished = False
        self.run_id = uuid.uuid4().hex[:8]
        limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(timeout=30, limits=limits)
        # streams hold their connection for minutes: a client of their own
        self.streams = httpx.AsyncClient(timeout=httpx.Timeout(30, read=60), limits=httpx.Limits())
        self.stopping = False
        self.signups = asyncio.Semaphore(args.signup_concurrency)
        self.signed_up = 0

    # --- plumbing --------------------------------------------------------------------------
    def error(self, kind: str) -> None:
        self.stats.errors[kind] += 1
        self.stats.error_log.append((time.time(), kind))

    def end_load(self) -> None:
        """No new rides from now on; rides under way finish within the grace (SIGUSR1:
        the caller, e.g. the chaos run, decides when the load has done what it needs)."""
        now = time.monotonic()
        if now < self.deadline:
            self.deadline = now
            self.hard = now + self.args.grace_s

    def over(self) -> bool:
        """No new work past the deadline (rides under way finish)."""
        return self.stopping or time.monotonic() >= self.deadline

    def hard_over(self) -> bool:
        """The deadline plus the grace for rides under way to end."""
        return self.stopping or time.monotonic() >= self.hard

    async def call(
        self, method: str, path: str, user: User | None = None, **kw: Any
    ) -> httpx.Response | None:
        url = path if path.startswith("http") else f"{self.api}{path}"
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers.update(user.headers)
        # an app rides out an outage: a network error or a 503 is tried again, for up to
        # --retry-s (else 3 tries). A retried POST may have landed the first time: the
        # callers of the ride's steps check the ride when told 409
        until = time.monotonic() + self.args.retry_s
        attempt = 0
        while True:
            attempt += 1
            try:
                r = await self.http.request(method, url, headers=headers, **kw)
            except httpx.HTTPError as exc:
                self.error(f"network:{type(exc).__name__}")
                if self._give_up(attempt, until):
                    return None
                await asyncio.sleep(min(0.5 * attempt, 3.0))
                continue
            if r.status_code == 401 and user is not None and not self._give_up(attempt, until):
                await self.refresh(user)  # expired: a new pair (or a new sign-in), and again
                headers.update(user.headers)
                continue
            if r.status_code == 429:
                self.error("http:429")
                if self._give_up(attempt, until):
                    return None
                await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            if r.status_code >= 500:
                self.error(f"http:{r.status_code}")
                if r.status_code in (502, 503, 504) and not self._give_up(attempt, until):
                    await asyncio.sleep(min(0.5 * attempt, 3.0))
                    continue
            return r

    def _give_up(self, attempt: int, until: float) -> bool:
        if self.args.retry_s > 0:
            return time.monotonic() >= until
        return attempt >= 3

    def expect(self, r: httpx.Response | None, *ok: int, what: str) -> bool:
        if r is None:
            self.error(f"{what}:no_answer")
            return False
        if r.status_code in ok:
            return True
        try:
            code = r.json().get("code", r.status_code)
        except ValueError:
            code = r.status_code
        self.error(f"{what}:{code}")
        return False

    async def refresh(self, user: User) -> None:
        """A new token pair, once for all of this user's requests: a refresh token is
        good for one use, so the app refreshes single-flight, as real apps do."""
        stale = user.token
        async with user.refreshing:
            if user.token != stale:
                return  # another request of this user refreshed meanwhile
            await self._refresh(user)

    async def _refresh(self, user: User) -> None:
        until = time.monotonic() + max(self.args.retry_s, 1.0)
        while True:
            try:
                r = await self.http.post(
                    f"{self.api}/auth/refresh", json={"refresh_token": user.refresh}
                )
            except httpx.HTTPError as exc:
                self.error(f"network:{type(exc).__name__}")
                r = None
            if r is not None and r.status_code < 500:
                break
            if time.monotonic() >= until:
                return
            await asyncio.sleep(1)
        if r.status_code == 401:
            # refresh tokens are single-use: one whose answer was lost (the server went
            # down after spending it) is refused; the app asks the user to sign in again
            t = await self.call(
                "POST", "/auth/token", data={"username": user.email, "password": PASSWORD}
            )
            if t is not None and t.status_code == 200:
                self.stats.relogins += 1
                pair = t.json()
                user.token, user.refresh = pair["access_token"], pair["refresh_token"]
            return
        if r.status_code == 200:
            pair = r.json()
            user.token, user.refresh = pair["access_token"], pair["refresh_token"]

    async def user(self, role: str, n: int) -> User | None:
        # sign-ups and sign-ins hash passwords (argon2, ~0.15 s of CPU each): a few at a
        # time, as real users arrive, not hundreds at once against one API process
        async with self.signups:
            made = await self._user(role, n)
        self.signed_up += 1
        if self.args.progress:
            total = self.args.drivers + self.args.passengers
            print(f"\rsigning up {self.signed_up}/{total} users ", end="", file=sys.stderr)
        return made

    async def _user(self, role: str, n: int) -> User | None:
        email = f"sim-{self.run_id}-{role}-{n}@example.com"
        r = await self.call(
            "POST",
            "/auth/register",
            json={"email": email, "password": PASSWORD, "name": f"Sim {role} {n}", "role": role},
        )
        if not self.expect(r, 201, what="register"):
            return None
        assert r is not None
        uid = r.json()["id"]
        t = await self.call("POST", "/auth/token", data={"username": email, "password": PASSWORD})
        if not self.expect(t, 200, what="login"):
            return None
        assert t is not None
        pair = t.json()
        user = User(uid, email, pair["access_token"], pair["refresh_token"], role)
        await self.call(
            "POST",
            "/devices",
            user,
            json={
                "token": f"sim-{self.run_id}-{uid}",
                "platform": self.rng.choice(["android", "ios"]),
            },
        )
        return user

    async def sse(self, path: str, user: User) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events of a stream, resumed with Last-Event-ID after a dropped connection."""
        last: str | None = None
        while not self.hard_over():
            headers = dict(user.headers)
            if last:
                headers["Last-Event-ID"] = last
            try:
                async with self.streams.stream("GET", f"{self.api}{path}", headers=headers) as r:
                    if r.status_code == 401:
                        await self.refresh(user)
                        continue
                    if r.status_code >= 500:  # an outage: the app tries again shortly
                        self.error(f"sse:{r.status_code}")
                        await asyncio.sleep(1)
                        continue
                    if r.status_code != 200:
                        self.error(f"sse:{r.status_code}")
                        return
                    event, data = "message", ""
                    async for line in r.aiter_lines():
                        if line.startswith("id:"):
                            last = line[3:].strip()
                        elif line.startswith("event:"):
                            event = line[6:].strip()
                        elif line.startswith("data:"):
                            data += line[5:].strip()
                        elif line == "":
                            if data:
                                try:
                                    yield event, json.loads(data)
                                except ValueError:
                                    self.error("sse:bad_json")
                            event, data = "message", ""
                        if self.hard_over():
                            return
                    # the server ended the stream (a restart, a slow consumer dropped):
                    # resume after the last event, as EventSource does
                    await asyncio.sleep(0.5)
            except httpx.HTTPError as exc:
                if self.hard_over():
                    return
                self.error(f"sse:{type(exc).__name__}")
                await asyncio.sleep(1)

    # --- drivers -------------------------------------------------------------------------------
    async def driver(self, n: int, user: User) -> None:
        d = Driver(self, n, user, around(self.rng, self.args.radius_m))
        await d.run()

    # --- passengers ------------------------------------------------------------------------
    async def save_card(self, user: User) -> bool:
        r = await self.call("POST", "/payments/setup-intent", user)
        if not self.expect(r, 200, what="setup_intent"):
            return False
        assert r is not None
        secret = r.json()["client_secret"]
        intent = secret.split("_secret_")[0]
        # what Stripe's SDK on the device does: confirm with the publishable key
        c = await self.call(
            "POST",
            f"{self.args.stripe_base}/v1/setup_intents/{intent}/confirm",
            headers={"Authorization": f"Bearer {self.args.publishable_key}"},
            data={"client_secret": secret, "payment_method": "pm_card_visa"},
        )
        return self.expect(c, 200, what="card_confirm")

    async def passenger(self, n: int, user: User, tags: list[str]) -> None:
        wants_card = self.rng.random() < self.args.card_share
        async with self.signups:  # a card is saved at sign-up, as the app asks for one
            has_card = wants_card and await self.save_card(user)
        await asyncio.sleep(self.rng.uniform(0, min(20.0, self.args.minutes * 15)))
        while not self.over() and time.monotonic() < self.deadline - 20:
            await self.ride(user, "card" if has_card else "cash", tags)
            await asyncio.sleep(self.rng.uniform(2, 10))

    async def ride(self, user: User, payment: str, tags: list[str]) -> None:
        pickup = around(self.rng, self.args.radius_m)
        trip = self.rng.uniform(self.args.trip_m * 0.3, self.args.trip_m)
        a = self.rng.uniform(0, 2 * math.pi)
        dropoff = offset(*pickup, trip * math.cos(a), trip * math.sin(a))
        place = {"pickup": {"lat": pickup[0], "lng": pickup[1]}}
        place["dropoff"] = {"lat": dropoff[0], "lng": dropoff[1]}
        est = await self.call("POST", "/rides/estimate", user, json=place)
        if not self.expect(est, 200, what="estimate"):
            return
        sent = time.time()
        r = await self.call(
            "POST",
            "/rides",
            user,
            json={**place, "payment": payment},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if not self.expect(r, 201, what="request_ride"):
            await asyncio.sleep(5)
            return
        assert r is not None
        ride_id = r.json()["id"]
        self.stats.requested += 1
        self.stats.ride_payment[ride_id] = payment
        self.stats.requested_at[ride_id] = sent
        if payment == "card":
            self.stats.card_rides.append((ride_id, user))
        will_cancel = self.rng.random() < self.args.cancel_share
        seen = {"status": "requested"}
        follow = asyncio.create_task(self.follow(ride_id, user, seen, will_cancel))
        given_up = False
        stranded_at: float | None = None
        while not follow.done():
            await asyncio.wait({follow}, timeout=1.0)
            if not given_up and self.over() and seen["status"] == "requested":
                given_up = True  # the run is ending: no one will take it now
                c = await self.call(
                    "POST", f"/rides/{ride_id}/cancel", user, json={"reason": "run over"}
                )
                self.expect(c, 200, 409, what="cancel")
            if stranded_at is None and self.hard_over() and seen["status"] not in ENDED:
                # the grace is over and the ride is not: a driver who never came (their
                # app lost track of it in an outage). The passenger cancels, as one would.
                stranded_at = time.monotonic()
                self.error("ride_stranded")
                c = await self.call(
                    "POST", f"/rides/{ride_id}/cancel", user, json={"reason": "driver never came"}
                )
                self.expect(c, 200, 409, what="cancel")
            if stranded_at is not None and time.monotonic() - stranded_at > 60:
                follow.cancel()  # the stream never said so: the final read below tells
                break
        status = seen["status"]
        if status not in ENDED:
            final = await self.call("GET", f"/rides/{ride_id}", user)  # the stream was cut
            if final is not None and final.status_code == 200:
                status = final.json()["status"]
        if status == "completed":
            self.stats.completed += 1
            stars = self.rng.choice([5, 5, 5, 4, 4, 3])
            body: dict[str, Any] = {"ride_id": ride_id, "stars": stars}
            if stars <= 3 and tags:
                body["tags"] = [self.rng.choice(tags)]
            if self.expect(await self.call("POST", "/ratings", user, json=body), 201, what="rate"):
                self.stats.ratings += 1
        elif status in ("cancelled", "no_show"):
            self.stats.cancelled += 1
        elif status == "expired":
            self.stats.expired += 1

    async def follow(
        self, ride_id: str, user: User, seen: dict[str, str], will_cancel: bool
    ) -> None:
        """The passenger app on the ride's stream: the driver moving, the status changing.
        Latency counts live positions only (not the backlog replayed on connecting)."""
        opened = time.time()
        async for event, data in self.sse(f"/rides/{ride_id}/events", user):
            if event == "location" and data.get("recorded_at"):
                recorded = parse_iso(data["recorded_at"])
                timed = self.stats.ride_format.get(ride_id) != "osmand"
                if timed and recorded >= opened:
                    self.stats.ping_to_sse.append(max(0.0, time.time() - recorded))
            elif event == "status":
                seen["status"] = data.get("status", seen["status"])
                if seen["status"] in ENDED:
                    return
                if seen["status"] == "accepted" and will_cancel:
                    await asyncio.sleep(self.rng.uniform(1, 4))
                    c = await self.call(
                        "POST", f"/rides/{ride_id}/cancel", user, json={"reason": "changed plans"}
                    )
                    self.expect(c, 200, 409, what="cancel")

    # --- the run ---------------------------------------------------------------------------
    async def progress(self) -> None:
        total = self.args.minutes * 60
        while not self.finished:
            done = min(1.0, (time.monotonic() - self.stats.started) / total)
            bar = "#" * int(done * 24) + "-" * (24 - int(done * 24))
            s = self.stats
            line = (
                f"\r[{bar}] {done:4.0%} rides {s.requested} (done {s.completed}, "
                f"cancelled {s.cancelled}, expired {s.expired}) pings {s.pings_accepted:,}"
                f"/{s.pings_sent:,} errors {sum(s.errors.values())} "
            )
            if self.over():
                line += "(finishing rides under way) "
            if self.args.progress:
                print(line, end="", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5)
        if self.args.progress:
            print(file=sys.stderr)

    async def run(self) -> dict[str, Any]:
        h = await self.call("GET", f"{self.base}/healthz")
        if h is None or h.status_code != 200:
            raise SystemExit(f"no ridehail API answers at {self.base} (start it: make run)")
        drivers = await asyncio.gather(*(self.user("driver", i) for i in range(self.args.drivers)))
        passengers = await asyncio.gather(
            *(self.user("passenger", i) for i in range(self.args.passengers))
        )
        tags: list[str] = []
        first = next((p for p in passengers if p), None)
        if first:
            t = await self.call("GET", "/ratings/tags", first)
            if t is not None and t.status_code == 200:
                tags = t.json()["passenger"]
        self.deadline = time.monotonic() + self.args.minutes * 60
        self.hard = self.deadline + self.args.grace_s
        self.stats.started = time.monotonic()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on every platform
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.end_load)
        jobs = [self.driver(i, u) for i, u in enumerate(drivers) if u]
        jobs += [self.passenger(i, u, tags) for i, u in enumerate(passengers) if u]
        progress = asyncio.create_task(self.progress())
        await asyncio.gather(*jobs)
        self.finished = True
        await progress
        settled = await self.settle()
        users = [u for u in (*drivers, *passengers) if u]
        summary = self.summary(settled, users)
        summary["pushes"] = await self.pushes(users)
        await self.http.aclose()
        await self.streams.aclose()
        return summary

    async def pushes(self, users: list[User]) -> dict[str, int]:
        """Pushes as the apps see them: every user's notification log, once nothing is
        queued any more (or after 30 s)."""
        until = time.monotonic() + 30
        while True:
            out: Counter[str] = Counter()
            for chunk in range(0, len(users), 50):
                answers = await asyncio.gather(
                    *(
                        self.call("GET", "/notifications", u, params={"limit": 100})
                        for u in users[chunk : chunk + 50]
                    )
                )
                for r in answers:
                    if r is not None and r.status_code == 200:
                        out.update(n["status"] for n in r.json()["items"])
            if not out["queued"] or time.monotonic() > until:
                return dict(out)
            await asyncio.sleep(1)

    async def settle(self) -> dict[str, int]:
        """Wait (up to --settle-s) for every card ride's payments to be final."""
        out: Counter[str] = Counter()
        until = time.monotonic() + self.args.settle_s
        for ride_id, user in self.stats.card_rides:
            while True:
                r = await self.call("GET", "/payments", user, params={"ride_id": ride_id})
                items = r.json().get("items", []) if r is not None and r.status_code == 200 else []
                auth = next((p for p in items if p["kind"] == "authorization"), None)
                final = auth is not None and auth["status"] in ("succeeded", "canceled", "failed")
                if final or time.monotonic() > until:
                    break
                await asyncio.sleep(0.5)
            if auth is None:
                out["no_payment"] += 1
            else:
                out[auth["status"]] += 1
                out["captured_amount"] += sum(
                    p["amount"] for p in items if p["status"] == "succeeded"
                )
        return dict(out)

    def summary(self, settled: dict[str, int], users: list[User]) -> dict[str, Any]:
        s = self.stats
        return {
            "minutes": self.args.minutes,
            "drivers": self.args.drivers,
            "passengers": self.args.passengers,
            "users": len(users),
            "rides": {
                "requested": s.requested,
                "completed": s.completed,
                "cancelled": s.cancelled,
                "expired": s.expired,
                "declined_offers": s.declines,
                "ratings": s.ratings,
            },
            "pings": {"sent": s.pings_sent, "accepted": s.pings_accepted},
            "payout_accounts": s.payout_accounts,
            "relogins": s.relogins,
            "latency_ms": {
                "request_to_offer_p50": _ms(pct(s.request_to_offer, 0.5)),
                "request_to_offer_p99": _ms(pct(s.request_to_offer, 0.99)),
                "ping_to_sse_p50": _ms(pct(s.ping_to_sse, 0.5)),
                "ping_to_sse_p99": _ms(pct(s.ping_to_sse, 0.99)),
                "samples": {"rides": len(s.request_to_offer), "sse": len(s.ping_to_sse)},
            },
            "payments": {
                "card_rides": len(s.card_rides),
                "card_captured": settled.get("succeeded", 0),
                "card_released": settled.get("canceled", 0),
                "card_failed": settled.get("failed", 0),
                "card_unsettled": len(s.card_rides)
                - sum(settled.get(k, 0) for k in ("succeeded", "canceled", "failed")),
                "captured_amount": settled.get("captured_amount", 0),
                "cash_rides": s.cash_rides,
                "cash_settled": s.cash_settled,
            },
            "errors": dict(s.errors.most_common()),
        }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 1) if seconds is not None else None


class Driver:
    """One driver app: a position, a tracking SDK's format, an SSE stream of offers."""

    FORMATS = ("native", "batch", "background_geolocation", "osmand")

    def __init__(self, sim: Sim, n: int, user: User, at: tuple[float, float]) -> None:
        self.sim, self.n, self.user, self.at = sim, n, user, at
        self.format = self.FORMATS[n % len(self.FORMATS)]
        self.heading = sim.rng.uniform(0, 360)
        self.speed = 0.0
        self.every = 5.0
        self.pending: list[dict[str, Any]] = []
        self.device_key: str | None = None
        self.offers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ride: dict[str, Any] | None = None
        self.on_trip: str | None = None  # the ride in progress: its pings make its path

    async def run(self) -> None:
        sim = self.sim
        if self.format == "osmand":
            k = await sim.call("POST", "/drivers/me/device-key", self.user)
            if sim.expect(k, 200, 201, what="device_key"):
                assert k is not None
                self.device_key = k.json()["device_key"]
            else:
                self.format = "native"
        if sim.rng.random() < sim.args.payout_share:
            await self.payout_account()
        online = await sim.call("POST", "/drivers/me/status", self.user, json={"status": "online"})
        if not sim.expect(online, 200, what="online"):
            return
        await self.ping()
        listener = asyncio.create_task(self.listen())
        try:
            await self.work()
        finally:
            listener.cancel()
            await sim.call("POST", "/drivers/me/status", self.user, json={"status": "offline"})

    async def payout_account(self) -> None:
        """Onboard for payouts: the link from the API, opened as the driver would."""
        sim = self.sim
        r = await sim.call("POST", "/drivers/me/payout-account", self.user)
        if not sim.expect(r, 200, 201, what="payout_account"):
            return
        assert r is not None
        o = await sim.call("GET", r.json()["url"], follow_redirects=False)
        if sim.expect(o, 200, 302, 303, what="payout_onboarding"):
            sim.stats.payout_accounts += 1

    async def listen(self) -> None:
        async for event, data in self.sim.sse("/drivers/me/events", self.user):
            if event == "offer":
                # a ride's first offer, as the server's dispatch figure counts it (an
                # offer of a later wave comes after a decline or a timeout, by design)
                sent = self.sim.stats.requested_at.pop(str(data.get("ride_id")), None)
                if sent is not None:
                    self.sim.stats.request_to_offer.append(max(0.0, time.time() - sent))
                await self.offers.put(data)

    async def work(self) -> None:
        sim = self.sim
        while not sim.over():
            try:
                offer = await asyncio.wait_for(self.offers.get(), timeout=self.every)
            except TimeoutError:
                self.wander(self.every)
                await self.ping()
                continue
            if sim.rng.random() < sim.args.decline_share:
                d = await sim.call("POST", f"/rides/{offer['ride_id']}/decline", self.user)
                sim.expect(d, 200, 204, 404, 409, what="decline")
                sim.stats.declines += 1
                continue
            a = await sim.call("POST", f"/rides/{offer['ride_id']}/accept", self.user)
            ride = a.json() if a is not None and a.status_code == 200 else None
            if ride is None and (a is None or a.status_code == 409 or a.status_code >= 500):
                # our retry's echo, or an answer lost to an outage: the accept may have
                # landed, and a ride left accepted by a driver who walked away strands its
                # passenger. Find out, as a driver app asks for its ride on reconnecting.
                ride = await self.landed(offer["ride_id"], "accepted", patient=True)
            if ride is None:
                sim.expect(a, 200, 404, 409, what="accept")  # taken or withdrawn: normal
                continue
            sim.stats.ride_format[offer["ride_id"]] = self.format
            await self.trip(ride)

    def wander(self, seconds: float) -> None:
        self.heading = (self.heading + self.sim.rng.uniform(-35, 35)) % 360
        self.speed = self.sim.rng.uniform(3, 10)
        step = self.speed * seconds
        h = math.radians(self.heading)
        nxt = offset(*self.at, step * math.cos(h), step * math.sin(h))
        if distance_m(nxt, CENTER) > self.sim.args.radius_m * 1.3:
            self.heading = bearing(self.at, CENTER)
            return
        self.at = nxt

    async def drive_to(self, target: tuple[float, float], ride_id: str) -> bool:
        """Toward `target` at a city speed, pinging as told; False when the run's grace is
        over first (the caller ends the ride then)."""
        sim = self.sim
        while distance_m(self.at, target) > 40:
            if sim.hard_over():
                return False
            pace = sim.args.speed_ms * sim.rng.uniform(0.8, 1.2) * self.every
            step = min(distance_m(self.at, target), pace)
            self.heading = (bearing(self.at, target) + sim.rng.uniform(-8, 8)) % 360
            h = math.radians(self.heading)
            self.at = offset(*self.at, step * math.cos(h), step * math.sin(h))
            self.speed = step / max(self.every, 0.1)
            await asyncio.sleep(self.every)
            if not await self.ping():
                return False
        self.at = target
        return True

    async def trip(self, ride: dict[str, Any]) -> None:
        sim, ride_id = self.sim, ride["id"]
        pickup = (ride["pickup"]["lat"], ride["pickup"]["lng"])
        dropoff = (ride["dropoff"]["lat"], ride["dropoff"]["lng"])
        if not await self.drive_to(pickup, ride_id):
            # the run is over before the pickup: the driver gives the ride up (no ride is
            # left open when the simulator stops)
            c = await sim.call(
                "POST", f"/rides/{ride_id}/cancel", self.user, json={"reason": "run over"}
            )
            sim.expect(c, 200, 409, what="driver_cancel")
            return
        if not await self.step(ride_id, "arrive"):
            return
        self.speed = 0.0
        await asyncio.sleep(sim.rng.uniform(1, 3))
        if not await self.step(ride_id, "start"):
            return
        self.on_trip = ride_id
        await self.drive_to(dropoff, ride_id)  # cut short by the end of the run: ends here
        self.on_trip = None
        r = await sim.call("POST", f"/rides/{ride_id}/complete", self.user)
        done = r.json() if r is not None and r.status_code == 200 else None
        if done is None and r is not None and r.status_code == 409:
            done = await self.landed(ride_id, "completed")
        if done is None and (r is None or r.status_code >= 500):  # lost to an outage
            done = await self.landed(ride_id, "completed", patient=True)
            if done is None and await self.step(ride_id, "complete"):
                done = await self.landed(ride_id, "completed", patient=True)
        if done is None:
            sim.expect(r, 200, 409, what="complete")
            return
        if done.get("payment") == "cash":
            sim.stats.cash_rides += 1
            fare = done["fare"]["amount"]
            c = await sim.call(
                "POST", f"/rides/{ride_id}/cash-collected", self.user, json={"amount": fare}
            )
            if c is not None and c.status_code == 409:  # recorded by a try that landed?
                c = await sim.call("GET", f"/rides/{ride_id}", self.user)
            if sim.expect(c, 201, 200, what="cash_collected"):
                sim.stats.cash_settled += 1
        stars = sim.rng.choice([5, 5, 4, 4, 5])
        g = await sim.call("POST", "/ratings", self.user, json={"ride_id": ride_id, "stars": stars})
        sim.expect(g, 201, what="rate_passenger")

    STEP_STATUS = {"arrive": "arrived", "start": "in_progress", "complete": "completed"}

    async def step(self, ride_id: str, action: str) -> bool:
        r = await self.sim.call("POST", f"/rides/{ride_id}/{action}", self.user)
        for _ in range(3):
            if r is not None and r.status_code < 500:
                break
            # the answer was lost to an outage: did it land? if not, do it again
            if await self.landed(ride_id, self.STEP_STATUS[action], patient=True):
                return True
            if self.sim.hard_over():
                break
            r = await self.sim.call("POST", f"/rides/{ride_id}/{action}", self.user)
        if r is not None and r.status_code == 409:
            # the passenger cancelled meanwhile (normal), or a retry of ours is told that
            # its first try landed
            return await self.landed(ride_id, self.STEP_STATUS[action]) is not None
        return self.sim.expect(r, 200, what=action)

    async def landed(
        self, ride_id: str, status: str, *, patient: bool = False
    ) -> dict[str, Any] | None:
        """The ride, if it is ours and at `status` (a step answered 409 had been done).
        `patient`: ask again through any outage until the server answers (or the run's
        grace is over)."""
        while True:
            r = await self.sim.call("GET", f"/rides/{ride_id}", self.user)
            answered = r is not None and r.status_code < 500
            if answered or not patient or self.sim.hard_over():
                break
            await asyncio.sleep(2)
        if r is None or r.status_code != 200:
            return None
        ride: dict[str, Any] = r.json()
        mine = ride.get("driver_id") == self.user.id
        return ride if mine and ride.get("status") == status else None

    def fix(self) -> dict[str, Any]:
        return {
            "lat": round(self.at[0], 6),
            "lng": round(self.at[1], 6),
            "heading": round(self.heading, 1),
            "speed": round(self.speed, 1),
            "accuracy": round(self.sim.rng.uniform(4, 15), 1),
            "t": time.time(),
        }

    async def ping(self) -> bool:
        """Send what this SDK sends now; True unless the server said stop (0)."""
        sim, f = self.sim, self.fix()
        if self.format == "native":
            body: Any = {k: f[k] for k in ("lat", "lng", "heading", "speed", "accuracy")}
            body["recorded_at"] = now_iso(f["t"])
            r = await sim.call("POST", "/drivers/me/location", self.user, json=body)
            count = 1
        elif self.format == "batch":
            fix = {k: f[k] for k in ("lat", "lng", "heading", "speed", "accuracy")}
            self.pending.append({**fix, "recorded_at": now_iso(f["t"])})
            body, count, self.pending = {"pings": self.pending}, len(self.pending), []
            r = await sim.call("POST", "/drivers/me/locations", self.user, json=body)
            if r is None or r.status_code >= 500:  # the SDK keeps them for the next try
                self.pending = body["pings"][-50:]
        elif self.format == "background_geolocation":
            body = {
                "location": {
                    "uuid": str(uuid.uuid4()),
                    "timestamp": now_iso(f["t"]),
                    "is_moving": f["speed"] > 0.5,
                    "odometer": 0,
                    "coords": {
                        "latitude": f["lat"],
                        "longitude": f["lng"],
                        "accuracy": f["accuracy"],
                        "speed": f["speed"],
                        "heading": f["heading"],
                        "altitude": 35.0,
                    },
                    "activity": {"type": "in_vehicle" if f["speed"] > 2 else "still"},
                    "battery": {"level": 0.8, "is_charging": False},
                }
            }
            r = await sim.call("POST", "/drivers/me/locations", self.user, json=body)
            count = 1
        else:
            params = {
                "id": self.device_key,
                "lat": f["lat"],
                "lon": f["lng"],
                "timestamp": int(f["t"]),
                "speed": round(f["speed"] / 0.514444, 2),  # knots, as Traccar Client sends
                "bearing": f["heading"],
                "accuracy": f["accuracy"],
                "batt": 80,
            }
            r = await sim.call("GET", f"{sim.base}/api/v1/osmand", params=params)
            count = 1
        sim.stats.pings_sent += count
        if r is None or r.status_code not in (200, 202):
            sim.expect(r, 200, 202, what=f"ping_{self.format}")
            return True
        answer = r.json()
        sim.stats.pings_accepted += int(answer.get("accepted", 0))
        if self.on_trip is not None and count:
            # every fix not refused (a duplicate: an earlier try of ours landed) is in the
            # ride's path, whatever happened to the servers since
            refused = {x["index"] for x in answer.get("reasons", [])}
            fixes = body["pings"] if self.format == "batch" else [f]
            trip = sim.stats.trip_pings.setdefault(self.on_trip, [])
            for i, fx in enumerate(fixes):
                if i not in refused:
                    t = parse_iso(fx["recorded_at"]) if "recorded_at" in fx else fx["t"]
                    trip.append([t, fx["lat"], fx["lng"]])
        nxt = float(answer.get("next_ping_in_s", 5) or 0)
        self.every = max(1.0, min(nxt, 15.0)) if nxt else 15.0
        return True


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    base = f"http://{os.environ.get('RIDEHAIL_API_HOST', '127.0.0.1')}:"
    base += os.environ.get("RIDEHAIL_API_PORT", "8000")
    p = argparse.ArgumentParser(prog="ridehail simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", default=base, help=f"the API (default {base})")
    p.add_argument("--drivers", type=int, default=50)
    p.add_argument("--passengers", type=int, default=25)
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--card-share", type=float, default=0.5, help="passengers paying by card")
    p.add_argument("--cancel-share", type=float, default=0.1, help="rides the passenger cancels")
    p.add_argument("--decline-share", type=float, default=0.1, help="offers drivers decline")
    p.add_argument("--radius-m", type=float, default=2500.0, help="the city's size")
    p.add_argument("--speed-ms", type=float, default=DRIVE_MS, help="driving speed, m/s")
    p.add_argument("--trip-m", type=float, default=1500.0, help="the longest trip, m")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--connections", type=int, default=200, help="HTTP connections for requests")
    p.add_argument("--signup-concurrency", type=int, default=4, help="sign-ups at a time")
    p.add_argument("--settle-s", type=float, default=60.0, help="wait for card payments to end")
    p.add_argument(
        "--grace-s", type=float, default=180.0, help="after the run, time for rides under way"
    )
    p.add_argument(
        "--stripe-base",
        default=os.environ.get("RIDEHAIL_STRIPE_API_BASE", "http://127.0.0.1:8420"),
        help="where the device confirms cards (Stripe, or the stand-in)",
    )
    p.add_argument(
        "--publishable-key",
        default=os.environ.get("RIDEHAIL_STRIPE_PUBLISHABLE_KEY", "pk_test_simulator"),
    )
    p.add_argument(
        "--retry-s",
        type=float,
        default=0.0,
        help="ride out an outage: retry network errors and 503s this long (default: 3 tries)",
    )
    p.add_argument(
        "--payout-share", type=float, default=0.0, help="drivers who onboard for payouts"
    )
    p.add_argument(
        "--record", default=None, help="write each ride's payment and trip pings here (JSON)"
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON only")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p.parse_args(argv)


def render(summary: dict[str, Any]) -> str:
    r, pg, lat, pay = summary["rides"], summary["pings"], summary["latency_ms"], summary["payments"]
    lines = [
        f"ridehail simulate: {summary['drivers']} drivers, {summary['passengers']} passengers, "
        f"{summary['minutes']} min",
        f"  rides      requested {r['requested']}, completed {r['completed']}, cancelled "
        f"{r['cancelled']}, expired {r['expired']}; offers declined {r['declined_offers']}; "
        f"ratings {r['ratings']}",
        f"  pings      sent {pg['sent']:,}, accepted {pg['accepted']:,}",
        f"  latency    request->offer p50 {lat['request_to_offer_p50']} ms, p99 "
        f"{lat['request_to_offer_p99']} ms ({lat['samples']['rides']} rides); "
        f"ping->SSE p50 {lat['ping_to_sse_p50']} ms, p99 {lat['ping_to_sse_p99']} ms "
        f"({lat['samples']['sse']} events)",
        f"  payments   card rides {pay['card_rides']}: captured {pay['card_captured']}, released "
        f"{pay['card_released']}, failed {pay['card_failed']}, unsettled {pay['card_unsettled']} "
        f"({pay['captured_amount']} cents captured); cash rides {pay['cash_rides']}: settled "
        f"{pay['cash_settled']}",
        f"  pushes     {summary.get('pushes', {})}",
        f"  errors     {summary['errors'] or 'none'}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    sim = Sim(args)
    try:
        summary = asyncio.run(sim.run())
    except KeyboardInterrupt:
        return 130
    if args.record:
        with open(args.record, "w") as out:
            json.dump(
                {
                    "rides": sim.stats.ride_payment,
                    "trip_pings": sim.stats.trip_pings,
                    "errors": sim.stats.error_log,
                },
                out,
            )
    print(json.dumps(summary, indent=2) if args.json else render(summary))
    unsettled = summary["payments"]["card_unsettled"] + (
        summary["payments"]["cash_rides"] - summary["payments"]["cash_settled"]
    )
    bad_errors = {k: v for k, v in summary["errors"].items() if k.startswith(("http:5", "network"))}
    return 1 if unsettled or bad_errors else 0


if __name__ == "__main__":
    sys.exit(main())
