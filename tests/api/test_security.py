"""Tokens as an attacker would try them, refresh tokens spent once, and user text kept
as text."""

from __future__ import annotations

import base64
import json
import time

import jwt
from fastapi.testclient import TestClient

from tests.factories import register


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _me(client: TestClient, token: str) -> int:
    return client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_unsigned_and_foreign_tokens_are_refused(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    acc = register(client, "passenger")
    claims = jwt.decode(acc.token, options={"verify_signature": False})
    assert _me(client, acc.token) == 200
    # alg=none, with and without a trailing signature, and as an admin
    for alg in ("none", "None", "NONE"):
        unsigned = f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64({**claims, 'role': 'admin'})}."
        assert _me(client, unsigned) == 401
    # another HMAC algorithm with our secret, and another secret with ours
    other_alg = jwt.encode(claims, settings.jwt_secret + "x" * 32, algorithm="HS512")
    assert _me(client, other_alg) == 401
    wrong_key = jwt.encode(claims, "x" * 48, algorithm="HS256")
    assert _me(client, wrong_key) == 401
    # tampered payload under the real signature
    head, _payload, sig = acc.token.split(".")
    assert _me(client, f"{head}.{_b64({**claims, 'role': 'admin'})}.{sig}") == 401


def test_tokens_not_yet_valid_or_without_expiry_are_refused(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    acc = register(client, "driver")
    claims = jwt.decode(acc.token, options={"verify_signature": False})
    later = int(time.time()) + 3600
    for bad in (
        {**claims, "nbf": later},
        {**claims, "iat": later},
        {k: v for k, v in claims.items() if k != "exp"},
        {k: v for k, v in claims.items() if k != "sub"},
    ):
        token = jwt.encode(bad, settings.jwt_secret, algorithm="HS256")
        assert _me(client, token) == 401, bad


def test_a_refresh_token_works_once(client: TestClient) -> None:
    acc = register(client, "passenger")
    first = client.post("/api/v1/auth/refresh", json={"refresh_token": acc.refresh_token})
    assert first.status_code == 200
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": acc.refresh_token})
    assert replay.status_code == 401
    assert replay.json() == {"detail": "refresh token already used", "code": "invalid_token"}
    # the new pair's refresh token works, once
    rotated = first.json()["refresh_token"]
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": rotated}).status_code == 200
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": rotated}).status_code == 401


def test_names_and_comments_come_back_as_the_same_text_in_json(client: TestClient) -> None:
    markup = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    body = {"email": "markup@example.com", "password": "password-1", "name": markup}
    made = client.post("/api/v1/auth/register", json={**body, "role": "passenger"})
    assert made.status_code == 201
    token = client.post(
        "/api/v1/auth/token", data={"username": body["email"], "password": body["password"]}
    ).json()["access_token"]
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.headers["content-type"].startswith("application/json")
    assert me.json()["name"] == markup  # text, as given: the apps display it as text
    # and no browser may take an answer of ours for markup
    assert me.headers["x-content-type-options"] == "nosniff"
