"""Server-Sent Events against real uvicorn processes: two API instances share one Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from infra.db import session_scope
from infra.live.keys import ride_stream
from infra.users import create_user
from tests.factories import PASSWORD, Account, advance, login, register, request_ride
from tests.services import start_api, stop
from tests.sse import SseClient
from tests.wait import until

pytestmark = pytest.mark.live_state

LAT, LNG = 52.52, 13.405


@pytest.fixture(scope="module")
def apis() -> Iterator[tuple[str, str]]:
    env = {"RIDEHAIL_SSE_KEEPALIVE_S": "0.5", "RIDEHAIL_ETA_INTERVAL_S": "0"}
    a, base_a = start_api(env)
    b, base_b = start_api(env)
    try:
        yield base_a, base_b
    finally:
        stop(a)
        stop(b)


@pytest.fixture
def http(db: None, apis: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=apis[0], timeout=10) as c:
        yield c


def _ping(http: httpx.Client, d: Account, ts: float, lat: float = LAT) -> dict[str, Any]:
    r = http.post(
        "/api/v1/drivers/me/location",
        json={"lat": lat, "lng": LNG, "recorded_at": ts, "speed": 8.0},
        headers=d.headers,
    )
    assert r.status_code == 202, r.text
    return r.json()


def _ride(http: httpx.Client) -> tuple[Account, Account, dict[str, Any]]:
    p = register(http, "passenger")  # type: ignore[arg-type]
    d = register(http, "driver")  # type: ignore[arg-type]
    ride = request_ride(http, p)  # type: ignore[arg-type]
    return p, d, ride


def test_a_ping_on_one_instance_reaches_a_client_of_the_other(
    http: httpx.Client, apis: tuple[str, str]
) -> None:
    p, d, ride = _ride(http)
    advance(http, ride["id"], d, "accept")  # type: ignore[arg-type]
    sse = SseClient(f"{apis[1]}/api/v1/rides/{ride['id']}/events", p.headers).start()
    assert sse.status == 200
    # the stored history first
    assert [sse.next().data["status"] for _ in range(2)] == ["requested", "accepted"]
    sent = time.time()
    _ping(http, d, sent - 1)  # posted to instance A
    loc = sse.next(kind="location")
    assert loc.data["driver_id"] == d.id
    assert loc.data["lat"] == LAT
    assert set(loc.data) == {
        "driver_id",
        "lat",
        "lng",
        "heading",
        "speed",
        "accuracy",
        "recorded_at",
        "live",
    }
    assert loc.data["live"] is True  # the driver's position now (not a late fix)
    assert "-" in loc.id
    eta = sse.next(kind="eta")
    assert eta.data["ride_id"] == ride["id"]
    assert eta.data["seconds"] >= 0
    assert eta.data["distance_m"] >= 0


def test_status_events_and_the_end_of_the_stream(http: httpx.Client, apis: tuple[str, str]) -> None:
    p, d, ride = _ride(http)
    sse = SseClient(f"{apis[1]}/api/v1/rides/{ride['id']}/events", d.headers)
    # the driver is not a participant before accepting
    sse.start()
    assert sse.status == 404
    advance(http, ride["id"], d, "accept")  # type: ignore[arg-type]
    sse = SseClient(f"{apis[1]}/api/v1/rides/{ride['id']}/events", d.headers).start()
    seen = [sse.next().data["status"] for _ in range(2)]
    for action in ("arrive", "start", "complete"):
        advance(http, ride["id"], d, action)  # type: ignore[arg-type]
    seen += [sse.next(kind="status").data["status"] for _ in range(3)]
    assert seen == ["requested", "accepted", "arrived", "in_progress", "completed"]
    assert sse.ended.wait(5), "the stream must end after the terminal status"
    # connecting to a finished ride replays it and ends
    late = SseClient(f"{apis[0]}/api/v1/rides/{ride['id']}/events", p.headers).start()
    assert late.ended.wait(5)
    statuses = []
    while (item := late.events.get(timeout=1)) is not None:
        if item.event == "status":
            statuses.append(item.data["status"])
    assert statuses[-1] == "completed"


def test_resume_with_last_event_id_has_no_gap_and_no_repeat(
    http: httpx.Client, apis: tuple[str, str]
) -> None:
    p, d, ride = _ride(http)
    advance(http, ride["id"], d, "accept")  # type: ignore[arg-type]
    now = time.time()
    for i in range(3):
        _ping(http, d, now - 30 + i, lat=LAT + i * 0.0001)
    url = f"{apis[1]}/api/v1/rides/{ride['id']}/events"
    first = SseClient(url, p.headers).start()
    got: list[Any] = []
    while sum(e.event == "location" for e in got) < 3:
        got.append(first.next())
    locations = [e for e in got if e.event == "location"]
    last_id = locations[1].id  # resume after the second location
    stored_after = [e.id for e in got[got.index(locations[1]) + 1 :]]
    # offline for a while: more happens
    for i in range(3, 6):
        _ping(http, d, now - 30 + i, lat=LAT + i * 0.0001)
    resumed = SseClient(url, {**p.headers, "Last-Event-ID": str(last_id)}).start()
    # ETA events are throttled, so count locations: 1 stored after last_id, 3 new
    rest: list[Any] = []
    while sum(e.event == "location" for e in rest) < 4:
        rest.append(resumed.next())
    ids = [tuple(map(int, e.id.split("-"))) for e in rest]
    assert ids == sorted(set(ids))  # in order, no repeats
    assert ids[0] > tuple(map(int, last_id.split("-")))
    assert [e.id for e in rest[: len(stored_after)]] == stored_after  # no gap
    lats = [e.data["lat"] for e in rest if e.event == "location"]
    assert lats == [pytest.approx(LAT + i * 0.0001) for i in range(2, 6)]
    bad = SseClient(url, {**p.headers, "Last-Event-ID": "yesterday"}).start()
    assert bad.status == 400


def _followed_with_a_lost_event(
    http: httpx.Client, base: str
) -> tuple[Account, SseClient, str, dict[str, Any]]:
    """An accepted ride followed by its passenger on `base`, then a location stored on the
    ride's stream without its publish (what pub/sub lost). Returns the driver, the
    client, the lost entry's id and its data."""
    from infra.redis import get_sync_redis

    p, d, ride = _ride(http)
    advance(http, ride["id"], d, "accept")  # type: ignore[arg-type]
    sse = SseClient(f"{base}/api/v1/rides/{ride['id']}/events", p.headers).start()
    assert [sse.next().data["status"] for _ in range(2)] == ["requested", "accepted"]
    lost = {"driver_id": d.id, "lat": LAT, "lng": LNG, "heading": None, "speed": None,
            "accuracy": None, "recorded_at": "2026-01-01T00:00:00Z", "live": True}  # fmt: skip
    entry = {"e": "location", "d": json.dumps(lost)}
    return d, sse, str(get_sync_redis().xadd(ride_stream(ride["id"]), entry)), lost


def test_an_event_pub_sub_lost_comes_from_the_stream_once_it_is_quiet(
    http: httpx.Client, apis: tuple[str, str]
) -> None:
    """Pub/sub delivers at most once: a shard failing over, or a subscription moving to
    a slot's new owner, can lose a message the stream kept. An event on the stream that
    never came through pub/sub (written here without its publish) reaches the client
    when its stream has been quiet for a keep-alive interval, once."""
    d, sse, stored, lost = _followed_with_a_lost_event(http, apis[1])
    got = sse.next(kind="location", timeout=10)
    assert (got.id, got.data) == (stored, lost)
    _ping(http, d, time.time())  # and live events go on after it, nothing twice
    after = sse.next(kind="location", timeout=10)
    assert after.id != stored
    assert after.data["recorded_at"] != lost["recorded_at"]


def test_a_live_event_after_one_pub_sub_lost_brings_the_lost_one_first(
    http: httpx.Client,
) -> None:
    """Each published event names the stream's entry before it: a client that did not
    see that entry reads it from the stream before the live one, in order, at once (on an
    instance whose keep-alive is far off, so nothing else could bring it)."""
    proc, base = start_api({"RIDEHAIL_SSE_KEEPALIVE_S": "60", "RIDEHAIL_ETA_INTERVAL_S": "0"})
    try:
        d, sse, stored, lost = _followed_with_a_lost_event(http, base)
        _ping(http, d, time.time())
        first, second = sse.next(kind="location", timeout=5), sse.next(kind="location", timeout=5)
        assert (first.id, first.data) == (stored, lost)
        assert second.data["recorded_at"] != lost["recorded_at"]
    finally:
        stop(proc)


def test_keep_alive_comments(http: httpx.Client, apis: tuple[str, str]) -> None:
    p, _d, ride = _ride(http)
    sse = SseClient(f"{apis[0]}/api/v1/rides/{ride['id']}/events", p.headers).start()
    until(lambda: len(sse.comments) >= 2, timeout=5)
    assert sse.comments[0] == ": keep-alive"


def test_stream_tokens_for_eventsource(http: httpx.Client, apis: tuple[str, str]) -> None:
    p, d, ride = _ride(http)
    other = request_ride(http, register(http, "passenger"))  # type: ignore[arg-type]
    url = f"{apis[0]}/api/v1/rides/{ride['id']}/events"
    r = http.post(f"/api/v1/rides/{ride['id']}/stream-token", headers=p.headers)
    assert r.status_code == 200
    token = r.json()
    assert token["expires_in"] > 0
    ok = SseClient(f"{url}?access_token={token['token']}").start()
    assert ok.status == 200
    assert ok.next().data["status"] == "requested"
    # scoped to its ride; an access token does not belong in a URL; strangers see nothing
    assert (
        SseClient(f"{apis[0]}/api/v1/rides/{other['id']}/events?access_token={token['token']}")
        .start()
        .status
        == 401
    )
    assert SseClient(f"{url}?access_token={p.token}").start().status == 401
    assert SseClient(url).start().status == 401
    stranger = register(http, "passenger")  # type: ignore[arg-type]
    assert SseClient(url, stranger.headers).start().status == 404
    assert (
        http.post(f"/api/v1/rides/{ride['id']}/stream-token", headers=stranger.headers).status_code
        == 404
    )
    # the driver gets one once assigned, and not before
    mint = f"/api/v1/rides/{ride['id']}/stream-token"
    assert http.post(mint, headers=d.headers).status_code == 404
    advance(http, ride["id"], d, "accept")  # type: ignore[arg-type]
    assert (
        http.post(f"/api/v1/rides/{ride['id']}/stream-token", headers=d.headers).status_code == 200
    )


def test_admin_stream_sees_every_status_and_position(
    http: httpx.Client, apis: tuple[str, str]
) -> None:
    with session_scope() as session:
        create_user(session, email="ops@e2e.io", password=PASSWORD, name="Ops", role="admin")
    admin = login(http, "ops@e2e.io", "", "admin")  # type: ignore[arg-type]
    feed = SseClient(f"{apis[1]}/api/v1/admin/events", admin.headers).start()
    assert feed.status == 200
    p, d, ride = _ride(http)
    requested = feed.next(kind="status").data
    assert (requested["ride_id"], requested["status"]) == (ride["id"], "requested")
    assert requested["at"].endswith("Z")
    _ping(http, d, time.time())
    loc = feed.next(kind="location")
    assert loc.data["driver_id"] == d.id
    token = http.post("/api/v1/admin/stream-token", headers=admin.headers).json()["token"]
    assert SseClient(f"{apis[0]}/api/v1/admin/events?access_token={token}").start().status == 200
    assert SseClient(f"{apis[0]}/api/v1/admin/events", p.headers).start().status == 403


def test_a_slow_subscriber_is_dropped_not_buffered(services: Any) -> None:
    from infra.events import EventHub
    from infra.live.streams import StreamsAsync
    from infra.redis import make_async_redis

    async def scenario() -> tuple[bool, int, bool]:
        client = make_async_redis()
        hub = EventHub(make_async_redis())
        await hub.start()
        try:
            slow = await hub.subscribe(ride_stream("slow"))
            fast = await hub.subscribe(ride_stream("slow"))
            live = StreamsAsync(client)
            for i in range(400):
                await live.emit(ride_stream("slow"), "location", {"i": i})
                while not fast.queue.empty():
                    fast.queue.get_nowait()
            await asyncio.sleep(0.3)
            return slow.dropped, slow.queue.qsize(), fast.dropped
        finally:
            await hub.stop()
            await client.aclose()

    dropped, size, fast_dropped = asyncio.run(scenario())
    assert dropped
    assert size <= 256
    assert not fast_dropped
