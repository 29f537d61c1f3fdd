"""Who reaches what: a matrix generated from the app's route table.

Every route with an object id in its path must have an entry below (a new one fails the
first test until it is given one). For each: the object's owners reach it; a stranger of
an owner's role gets 404 (the object does not exist for them), any other signed-in role
gets 403 or 404, and no token is 401. The event streams (by header and by stream token),
stream tokens of another ride, device keys and the OsmAnd endpoint are checked below too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.db import session_scope
from infra.users import create_user
from tests.factories import (
    PASSWORD,
    Account,
    card_passenger,
    card_ride,
    grant_offer,
    held,
    login,
    register,
    request_ride,
)
from tests.wait import until


@pytest.fixture
def client(db: None, celery_session_worker: Any) -> Iterator[TestClient]:
    """The API in-process and a real worker (card holds are the worker's)."""
    from api.main import app

    with TestClient(app) as c:
        yield c


# object routes whose objects belong to no one (any signed-in user may read them)
PUBLIC = {
    ("GET", "/api/v1/ratings/user/{user_id}"),
    ("GET", "/api/v1/users/{user_id}/rating"),
}


@dataclass
class World:
    client: TestClient
    actors: dict[str, Account | None]
    ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    param: str  # which object of the world fills the path
    owners: tuple[str, ...]  # actors who may reach it
    body: dict[str, Any] | None = None
    # statuses an owner may get: reached, even if the state says no (409) or the input (422)
    reached: tuple[int, ...] = (200, 201, 202, 204, 409, 422)


RIDE = "ride"
RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/v1/rides/{ride_id}"): Rule(RIDE, ("passenger", "driver", "admin")),
    ("POST", "/api/v1/rides/{ride_id}/accept"): Rule("offered", ("driver",)),
    ("POST", "/api/v1/rides/{ride_id}/decline"): Rule("offered", ("driver",), reached=(200, 204)),
    ("POST", "/api/v1/rides/{ride_id}/arrive"): Rule(RIDE, ("driver",)),
    ("POST", "/api/v1/rides/{ride_id}/start"): Rule(RIDE, ("driver",)),
    ("POST", "/api/v1/rides/{ride_id}/complete"): Rule(RIDE, ("driver",)),
    ("POST", "/api/v1/rides/{ride_id}/no-show"): Rule(RIDE, ("driver",)),
    ("POST", "/api/v1/rides/{ride_id}/cash-collected"): Rule(RIDE, ("driver",), {"amount": 1}),
    ("POST", "/api/v1/rides/{ride_id}/stream-token"): Rule(RIDE, ("passenger", "driver", "admin")),
    ("GET", "/api/v1/rides/{ride_id}/driver-location"): Rule(
        RIDE, ("passenger", "driver", "admin"), reached=(200, 204, 304)
    ),
    ("GET", "/api/v1/rides/{ride_id}/events"): Rule("ended", ("passenger", "driver", "admin")),
    ("POST", "/api/v1/rides/{ride_id}/cancel"): Rule(
        RIDE, ("passenger", "driver", "admin"), {"reason": "matrix"}
    ),
    ("GET", "/api/v1/admin/drivers/{driver_id}/dispatch-stats"): Rule("driver_id", ("admin",)),
    ("POST", "/api/v1/payments/methods/{pm_id}/default"): Rule("card", ("passenger",)),
    ("DELETE", "/api/v1/payments/methods/{pm_id}"): Rule("card", ("passenger",)),
    ("POST", "/api/v1/payments/{payment_id}/refunds"): Rule(
        "payment", ("admin",), {"reason": "requested_by_customer", "amount": 1}
    ),
    ("POST", "/api/v1/payments/{payment_id}/confirm"): Rule("payment", ("passenger",)),
    ("DELETE", "/api/v1/devices/{token}"): Rule("device", ("passenger",)),
    ("GET", "/api/v1/admin/notifications/broadcast/{broadcast_id}"): Rule("broadcast", ("admin",)),
}

ROLE = {
    "passenger": "passenger",
    "driver": "driver",
    "admin": "admin",
    "stranger_passenger": "passenger",
    "stranger_driver": "driver",
    "anonymous": "",
}


def _object_routes(client: TestClient) -> set[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if "{" in path
        for method in ops
    }


def test_every_object_route_is_in_the_matrix(client: TestClient) -> None:
    routes = _object_routes(client)
    missing = routes - set(RULES) - PUBLIC
    assert not missing, f"give these routes a rule in RULES (or PUBLIC): {sorted(missing)}"
    assert not (set(RULES) | PUBLIC) - routes, "rules for routes that no longer exist"


@pytest.fixture
def world(client: TestClient) -> World:
    with session_scope() as session:
        create_user(
            session, email="matrix-admin@example.com", password=PASSWORD, name="A", role="admin"
        )
    admin = login(client, "matrix-admin@example.com", "", "admin")
    passenger = card_passenger(client)
    stranger_passenger = card_passenger(client)
    driver, stranger_driver = register(client, "driver"), register(client, "driver")
    w = World(
        client,
        {
            "passenger": passenger,
            "driver": driver,
            "admin": admin,
            "stranger_passenger": stranger_passenger,
            "stranger_driver": stranger_driver,
            "anonymous": None,
        },
    )
    ride = card_ride(client, passenger)
    auth = held(ride["id"])
    grant_offer(ride["id"], driver.id)
    assert (
        client.post(f"/api/v1/rides/{ride['id']}/accept", headers=driver.headers).status_code == 200
    )
    w.ids[RIDE] = ride["id"]
    online = {"status": "online"}
    assert (
        client.post("/api/v1/drivers/me/status", json=online, headers=driver.headers).status_code
        == 200
    )
    fix = {"lat": 52.5201, "lng": 13.4049, "recorded_at": time.time()}
    assert (
        client.post("/api/v1/drivers/me/location", json=fix, headers=driver.headers).status_code
        == 202
    )
    w.ids["payment"] = str(auth["id"])
    # a second ride of the passenger, offered to the driver (for accept / decline)
    other = request_ride(client, register(client, "passenger"))
    w.ids["offered"] = other["id"]
    # an ended ride (its event stream ends: the owners' reads finish)
    ended = request_ride(client, stranger_passenger)
    assert (
        client.post(
            f"/api/v1/rides/{ended['id']}/cancel",
            json={"reason": "x"},
            headers=stranger_passenger.headers,
        ).status_code
        == 200
    )
    w.ids["ended"] = ended["id"]
    w.ids["driver_id"] = driver.id
    cards = client.get("/api/v1/payments/methods", headers=passenger.headers).json()["items"]
    w.ids["card"] = cards[0]["id"]
    token = f"matrix-{uuid.uuid4().hex}"
    assert client.post(
        "/api/v1/devices", json={"token": token, "platform": "android"}, headers=passenger.headers
    ).status_code in (200, 201)
    w.ids["device"] = token
    b = client.post(
        "/api/v1/admin/notifications/broadcast",
        json={"title": "t", "body": "b"},
        headers=admin.headers,
    )
    assert b.status_code == 202, b.text
    w.ids["broadcast"] = b.json()["id"]
    return w


def _call(w: World, actor: str, method: str, path: str, rule: Rule) -> int:
    # the "ended" ride belongs to the stranger passenger: its owners are that side's
    url = path.replace("{" + path.split("{")[1].split("}")[0] + "}", w.ids[rule.param])
    who = w.actors[actor]
    headers = who.headers if who else {}
    r = w.client.request(method, url, headers=headers, json=rule.body)
    return r.status_code


def test_only_owners_and_admins_reach_an_object(world: World) -> None:
    w = world

    # the ended ride's owners: its passenger (the "stranger" passenger of the others)
    def owners_of(rule: Rule) -> tuple[str, ...]:
        return ("stranger_passenger", "admin") if rule.param == "ended" else rule.owners

    failures = []
    # everyone who is not an owner first (nothing changes), the owners last
    for (method, path), rule in RULES.items():
        owners = owners_of(rule)
        for actor, role in ROLE.items():
            if actor in owners:
                continue
            if rule.param == "offered" and actor == "driver":
                continue  # the driver's offer is granted below
            status = _call(w, actor, method, path, rule)
            if actor == "anonymous":
                expected: tuple[int, ...] = (401,)
            elif any(ROLE[o] == role for o in owners):
                expected = (404,)  # a stranger of the owner's role: it does not exist
            else:
                expected = (403, 404)
            if status not in expected:
                failures.append((actor, method, path, status, expected))
    assert not failures, failures
    grant_offer(w.ids["offered"], w.actors["driver"].id)  # type: ignore[union-attr]
    # the owners: reads first, then the changes, the ride's cancellation last
    order = sorted(RULES.items(), key=lambda kv: (kv[0][0] != "GET", kv[0][1].endswith("/cancel")))
    for (method, path), rule in order:
        for actor in owners_of(rule):
            status = _call(w, actor, method, path, rule)
            if status not in rule.reached:
                failures.append((actor, method, path, status, rule.reached))
    assert not failures, failures


def test_stream_tokens_open_their_own_ride_only(world: World) -> None:
    w = world
    c, passenger = w.client, w.actors["passenger"]
    assert passenger is not None
    token = c.post(
        f"/api/v1/rides/{w.ids['ended']}/stream-token",
        headers=w.actors["stranger_passenger"].headers,
    ).json()["token"]  # type: ignore[union-attr]
    mine = c.get(f"/api/v1/rides/{w.ids['ended']}/events?access_token={token}")
    assert mine.status_code == 200
    other = c.get(f"/api/v1/rides/{w.ids[RIDE]}/events?access_token={token}")
    assert other.status_code in (401, 404)
    # a stream token is not an access token
    assert (
        c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    )
    assert c.get(f"/api/v1/rides/{w.ids[RIDE]}/events?access_token=forged").status_code == 401
    # the admin stream needs an admin
    assert c.get("/api/v1/admin/events", headers=passenger.headers).status_code == 403
    assert c.get("/api/v1/admin/events").status_code == 401


def test_a_device_key_moves_its_own_driver_only(world: World) -> None:
    w = world
    c = w.client
    driver, stranger = w.actors["driver"], w.actors["stranger_driver"]
    assert driver is not None
    assert stranger is not None
    key = c.post("/api/v1/drivers/me/device-key", headers=driver.headers).json()["device_key"]
    ok = c.get(
        "/api/v1/osmand",
        params={"id": key, "lat": 52.52, "lon": 13.405, "timestamp": int(time.time())},
    )
    assert ok.status_code == 200
    assert (
        c.get("/api/v1/osmand", params={"id": "not-a-key", "lat": 52.52, "lon": 13.405}).status_code
        == 401
    )
    # the stranger's position never moved, and their key is theirs alone
    other = c.post("/api/v1/drivers/me/device-key", headers=stranger.headers).json()["device_key"]
    assert other != key
    until(
        lambda: (
            c.get(
                f"/api/v1/rides/{w.ids[RIDE]}/driver-location",
                headers=w.actors["passenger"].headers,
            ).status_code
            == 200
        )
    )  # type: ignore[union-attr]
    seen = c.get(
        f"/api/v1/rides/{w.ids[RIDE]}/driver-location", headers=w.actors["passenger"].headers
    ).json()  # type: ignore[union-attr]
    assert seen["driver_id"] == driver.id
    # a device key is not a bearer token
    assert c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401


# objects named in the query or the body rather than the path: (method, path, the object,
# how it is named, owners, what an owner may get)
NAMED = [
    ("GET", "/api/v1/payments", RIDE, "query", ("passenger", "driver", "admin"), (200,)),
    ("POST", "/api/v1/payments/intent", RIDE, "body", ("passenger",), (200, 409)),
    # a rating of a ride not yet over is refused (409): reached all the same
    ("POST", "/api/v1/ratings", RIDE, "body", ("passenger", "driver"), (201, 409, 422)),
]


def test_objects_named_in_the_query_or_body_are_reached_by_their_owners_only(
    world: World,
) -> None:
    w = world
    failures = []
    for method, path, param, where, owners, reached in NAMED:
        named: dict[str, Any] = {"ride_id": w.ids[param]}
        for actor, role in ROLE.items():
            who = w.actors[actor]
            headers = who.headers if who else {}
            body = {**named, "stars": 5} if path.endswith("/ratings") else named
            r = w.client.request(
                method,
                path,
                headers=headers,
                params=named if where == "query" else None,
                json=body if where == "body" else None,
            )
            if actor in owners:
                expected: tuple[int, ...] = reached
            elif actor == "anonymous":
                expected = (401,)
            elif any(ROLE[o] == role for o in owners):
                expected = (404,)  # not theirs: it does not exist for them
            else:
                expected = (403, 404)
            if r.status_code not in expected:
                failures.append((actor, method, path, r.status_code, expected))
    assert not failures, failures


def test_admin_routes_without_an_id_are_for_admins_only(world: World) -> None:
    w = world
    spec = w.client.get("/openapi.json").json()
    routes = [
        (m.upper(), p)
        for p, ops in spec["paths"].items()
        if p.startswith("/api/v1/admin/") and "{" not in p
        for m in ops
    ]
    assert len(routes) >= 4, routes
    failures = []
    for method, path in routes:
        for actor in ("passenger", "driver", "stranger_driver", "anonymous"):
            who = w.actors[actor]
            r = w.client.request(method, path, headers=who.headers if who else {}, json={})
            expected = 401 if who is None else 403
            if r.status_code != expected:
                failures.append((actor, method, path, r.status_code, expected))
    assert not failures, failures


def test_routes_outside_the_schema_give_nothing_away(world: World) -> None:
    """`/ops` is a page that signs the admin in itself (no data in it), the onboarding
    return page tells nothing about any account, and the Prometheus figures are not on the
    public port at all."""
    w = world
    for actor in ROLE:
        who = w.actors[actor]
        headers = who.headers if who else {}
        ops = w.client.get("/ops", headers=headers)
        assert ops.status_code == 200
        assert w.ids[RIDE] not in ops.text
        assert "@example.com" not in ops.text
        back = w.client.get("/api/v1/payouts/onboarding", headers=headers)
        assert back.status_code == 200
        assert "acct_" not in back.text
        assert w.client.get("/metrics", headers=headers).status_code == 404
