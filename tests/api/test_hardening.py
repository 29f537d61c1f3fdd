"""What trying real clients, a fuzzer and a hand probe of access found, pinned: extreme
latitudes, booleans as numbers, the OsmAnd dialect as Traccar reads it, who sees a
requested ride, and an OpenAPI document that says what every answer looks like."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient

from domain.pings import MAX_GEO_LAT
from infra.live.keys import Keys
from infra.redis import get_sync_redis
from tests.api.test_location import LAT, LNG, native, online, pos
from tests.factories import DROPOFF, PICKUP, grant_offer, register, request_ride


def test_a_fix_beyond_the_map_limit_is_refused_before_anything_is_written(
    client: TestClient,
) -> None:
    d = register(client, "driver")
    online(client, d)
    r = client.post(
        "/api/v1/drivers/me/location", json=native(lat=86.0, lng=10.0), headers=d.headers
    )
    assert r.status_code == 422
    assert r.json()["code"] == "lat_out_of_range"
    assert pos(d.id) == {}  # nothing written: a retry is not a "duplicate"
    batch = {"pings": [native(time.time() - 2, lat=-85.2), native(time.time() - 1)]}
    r = client.post("/api/v1/drivers/me/locations", json=batch, headers=d.headers)
    assert r.status_code == 202
    assert (r.json()["accepted"], r.json()["rejected"]) == (1, 1)
    assert r.json()["reasons"][0]["reason"] == "lat_out_of_range"
    assert float(pos(d.id)["lat"]) == LAT
    near = client.get(
        "/api/v1/drivers/nearby",
        params={"lat": LAT, "lng": LNG},
        headers=register(client, "passenger").headers,
    )
    assert [i["driver_id"] for i in near.json()["items"]] == [d.id]


def test_nearby_search_beyond_the_map_limit_is_a_422(client: TestClient) -> None:
    p = register(client, "passenger")
    r = client.get("/api/v1/drivers/nearby", params={"lat": 86.5, "lng": 0}, headers=p.headers)
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"


def test_the_ping_script_itself_refuses_what_geo_cannot_index(client: TestClient) -> None:
    """Validation stops such a fix first; the script checks again before any write."""
    import asyncio

    from domain.pings import Ping, PingRules
    from infra.live.positions import PositionsAsync
    from infra.redis import make_async_redis

    async def apply() -> list[str]:
        client_ = make_async_redis()
        try:
            res = await PositionsAsync(client_).apply_pings(
                "d-1",
                [Ping(lat=MAX_GEO_LAT + 0.1, lng=0.0, recorded_at=time.time())],
                PingRules(),
                rate_limit=100,
                rate_window_s=10,
            )
            return res.codes
        finally:
            await client_.aclose()

    assert asyncio.run(apply()) == ["lat_out_of_range"]
    assert get_sync_redis().hgetall(Keys.of(Keys.POSITION, "d-1")) == {}


def test_booleans_are_not_numbers(client: TestClient) -> None:
    p = register(client, "passenger")
    r = client.post(
        "/api/v1/rides/estimate",
        json={"pickup": {"lat": 52.52, "lng": False}, "dropoff": DROPOFF},
        headers=p.headers,
    )
    assert r.status_code == 422
    assert r.json()["code"] == "validation_error"
    r = client.post(
        "/api/v1/rides/estimate", json={"pickup": PICKUP, "dropoff": DROPOFF}, headers=p.headers
    )
    assert r.status_code == 200


def test_osmand_as_traccar_reads_it(client: TestClient) -> None:
    d = register(client, "driver")
    online(client, d)
    key = client.post("/api/v1/drivers/me/device-key", headers=d.headers).json()["device_key"]
    now = int(time.time())
    # `location=lat,lon` and `heading` (another name for `bearing`)
    r = client.get(
        "/api/v1/osmand",
        params={"id": key, "location": f"{LAT},{LNG}", "timestamp": now - 10, "heading": 90},
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert (float(pos(d.id)["lat"]), float(pos(d.id)["heading"])) == (LAT, 90.0)
    # a fix the device marks invalid is taken (the app does not resend it), never shown
    r = client.get(
        "/api/v1/osmand",
        params={"id": key, "lat": LAT + 0.01, "lon": LNG, "timestamp": now - 5, "valid": "false"},
    )
    assert r.status_code == 200
    assert r.json()["accepted"] == 1
    assert r.json()["reasons"][0]["reason"] == "invalid_fix"
    assert float(pos(d.id)["lat"]) == LAT


def test_a_requested_ride_is_seen_by_drivers_holding_an_offer_only(client: TestClient) -> None:
    p = register(client, "passenger")
    offered, other = register(client, "driver"), register(client, "driver")
    ride = request_ride(client, p)
    url = f"/api/v1/rides/{ride['id']}"
    assert client.get(url, headers=other.headers).status_code == 404
    grant_offer(ride["id"], offered.id)
    seen = client.get(url, headers=offered.headers)
    assert seen.status_code == 200
    body: dict[str, Any] = seen.json()
    assert body["pickup"] == PICKUP
    assert body["estimate"]["amount"] == ride["estimate"]["amount"]
    assert body["expires_at"]
    assert "passenger_id" not in body  # the offer's fields only
    # nothing under the ride is theirs: no live location, events or payments
    for path in ("driver-location", "events"):
        assert client.get(f"{url}/{path}", headers=offered.headers).status_code == 404
    pays = client.get("/api/v1/payments", params={"ride_id": ride["id"]}, headers=offered.headers)
    assert pays.status_code == 404
    assert client.get(url, headers=other.headers).status_code == 404


def test_dispatch_stats_of_a_bad_driver_id_says_driver(client: TestClient) -> None:
    from infra.db import session_scope
    from infra.users import create_user

    with session_scope() as session:
        create_user(session, email="ops@example.com", password="x" * 10, name="Ops", role="admin")
    r = client.post(
        "/api/v1/auth/token", data={"username": "ops@example.com", "password": "x" * 10}
    )
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    bad = client.get("/api/v1/admin/drivers/not-an-id/dispatch-stats", headers=admin)
    # a uuid like every id of the API: the answer names the field
    assert (bad.status_code, bad.json()["code"]) == (422, "validation_error")
    assert bad.json()["detail"][0]["loc"] == ["path", "driver_id"]
    fresh = client.get(f"/api/v1/admin/drivers/{uuid.uuid4()}/dispatch-stats", headers=admin)
    assert fresh.json() == {"offered": 0, "accepted": 0, "declined": 0, "expired": 0}


# --- the OpenAPI document ------------------------------------------------------------------
def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_reference_in_the_openapi_document_resolves(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    refs = _refs(doc)
    assert any(r.startswith("#/components/parameters/") for r in refs)
    for ref in refs:
        assert ref.startswith("#/components/"), ref
        assert isinstance(_resolve(doc, ref), dict), ref


def test_error_answers_are_documented_in_the_one_shape(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorOut"
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            responses = op["responses"]
            for status, answer in responses.items():
                if (path, status) == ("/readyz", "503"):
                    continue  # not ready: the readiness body itself, with each check
                if status.startswith(("4", "5")):
                    if "$ref" in answer:
                        answer = _resolve(doc, answer["$ref"])
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": error_ref}, (method, path, status)
            # Stripe's webhook: a bad signature is a 400, as Stripe expects
            if op.get("security") and path != "/api/v1/webhooks/stripe":
                assert "401" in responses, (method, path)
    ride_accept = doc["paths"]["/api/v1/rides/{ride_id}/accept"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(ride_accept)
    error = doc["components"]["schemas"]["ErrorOut"]
    assert set(error["required"]) == {"detail", "code"}


def test_event_streams_document_their_events(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, names in (
        ("/api/v1/rides/{ride_id}/events", {"location", "status", "eta"}),
        ("/api/v1/admin/events", {"location", "status"}),  # no eta on the ops stream
        ("/api/v1/drivers/me/events", {"offer", "offer_withdrawn", "ride_status"}),
    ):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        schema = content["text/event-stream"]["schema"]
        assert set(schema["x-sse-events"]) == names, path


def test_the_roles_and_the_public_operations_the_document_declares_hold(
    client: TestClient,
) -> None:
    """Each operation's `x-roles`: a caller of another role is refused with a 403 before
    anything else is looked at; an operation declared public answers without a token."""
    from infra.security import issue_token

    doc = client.get("/openapi.json").json()
    tokens = {
        role: issue_token(uuid.uuid4(), role, "access", 300)
        for role in ("passenger", "driver", "admin")
    }
    checked = 0
    for path, methods in doc["paths"].items():
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        for method, op in methods.items():
            if op["security"] == []:
                if op["operationId"] in ("check_health", "check_readiness"):
                    assert client.request(method, url).status_code == 200, url
                continue
            if {"OAuth2PasswordBearer": []} not in op["security"]:
                continue  # a device key or Stripe's signature: no role to hold
            for role, token in tokens.items():
                if role in op["x-roles"]:
                    continue
                r = client.request(method, url, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 403, (method, path, role, r.status_code, r.text)
                assert r.json()["code"] == "role_forbidden"
                checked += 1
    assert checked > 40


def test_the_statuses_the_edge_answers_are_declared_where_they_happen(
    client: TestClient, settings: Any
) -> None:
    """413 and 415 come from the edge, before any route: every operation that takes a body
    declares them (415 not where forms are welcome), and each declared one really answers
    them."""
    doc = client.get("/openapi.json").json()
    checked = 0
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            responses = op["responses"]
            if method not in ("post", "put", "patch"):
                assert "413" not in responses, (method, path)
                continue
            assert "413" in responses, (method, path)
            big = client.request(
                method.upper(),
                url,
                content=b"{}",
                headers={"content-type": "application/json",
                         "content-length": str(settings.max_body_bytes + 1)},
            )  # fmt: skip
            assert (big.status_code, big.json()["code"]) == (413, "payload_too_large"), path
            text_body = client.request(
                method.upper(), url, content=b"hello", headers={"content-type": "text/plain"}
            )
            if "415" in responses:
                assert text_body.status_code == 415, (method, path)
            else:
                assert text_body.status_code != 415, (method, path)
            checked += 1
    assert checked > 30


def test_the_streams_contract_is_served_beside_the_http_one(client: TestClient) -> None:
    from api import asyncapi
    from infra.settings import get_settings

    served = client.get("/asyncapi.json")
    assert served.status_code == 200
    assert served.json() == asyncapi.build(get_settings().public_url)
    openapi = client.get("/openapi.json").json()
    assert openapi["externalDocs"]["url"].endswith("/asyncapi.json")
    # the same event schemas in both
    for name in ("LocationEvent", "StatusEvent", "OfferEvent"):
        assert (
            served.json()["components"]["schemas"][name] == openapi["components"]["schemas"][name]
        )
