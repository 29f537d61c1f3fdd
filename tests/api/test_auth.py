from __future__ import annotations

import subprocess
import sys

import jwt
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.factories import PASSWORD, login, register


def _reg(client: TestClient, **over: str):  # type: ignore[no-untyped-def]
    body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann", "role": "passenger"}
    body.update(over)
    return client.post("/api/v1/auth/register", json=body)


def test_register_returns_the_user_and_hashes_the_password(client: TestClient) -> None:
    r = _reg(client, email="Ann@Example.com")
    assert r.status_code == 201
    user = r.json()
    assert set(user) == {"id", "email", "name", "role", "created_at"}
    assert user["email"] == "ann@example.com"
    assert user["role"] == "passenger"
    assert user["created_at"].endswith("Z") or user["created_at"].endswith("+00:00")
    from infra.db import get_engine

    with get_engine().connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_duplicate_email_is_409(client: TestClient) -> None:
    assert _reg(client).status_code == 201
    r = _reg(client, email="ANN@example.com", role="driver")
    assert r.status_code == 409
    assert r.json() == {"detail": "an account with this email exists", "code": "email_taken"}


def test_admin_cannot_register_over_http(client: TestClient) -> None:
    r = _reg(client, role="admin")
    assert r.status_code == 403
    assert r.json()["code"] == "role_not_allowed"
    r = _reg(client, role="superuser")  # not a role at all
    assert (r.status_code, r.json()["code"]) == (422, "validation_error")


def test_register_validation_errors_have_the_error_shape(client: TestClient) -> None:
    r = _reg(client, email="not-an-email", password="short")
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    fields = {tuple(e["loc"]) for e in body["detail"]}
    assert ("body", "email") in fields
    assert ("body", "password") in fields


def test_token_refresh_and_me(client: TestClient) -> None:
    acc = register(client, "driver")
    me = client.get("/api/v1/users/me", headers=acc.headers)
    assert me.status_code == 200
    assert me.json()["id"] == acc.id
    assert me.json()["role"] == "driver"

    r = client.post("/api/v1/auth/refresh", json={"refresh_token": acc.refresh_token})
    assert r.status_code == 200
    pair = r.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] > 0
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        ).json()["id"]
        == acc.id
    )


def test_wrong_password_is_401(client: TestClient) -> None:
    acc = register(client, "passenger")
    r = client.post("/api/v1/auth/token", data={"username": acc.email, "password": "nope-nope"})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_credentials"
    r = client.post("/api/v1/auth/token", data={"username": "ghost@x.io", "password": "whatever1"})
    assert r.status_code == 401


def test_tokens_are_not_interchangeable(client: TestClient) -> None:
    acc = register(client, "passenger")
    # a refresh token is no access token, and the reverse
    r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {acc.refresh_token}"})
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_token"
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": acc.token})
    assert r.status_code == 401


def test_missing_expired_and_forged_tokens_are_401(client: TestClient, settings) -> None:  # type: ignore[no-untyped-def]
    r = client.get("/api/v1/users/me")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["code"] == "not_authenticated"

    acc = register(client, "passenger")
    claims = jwt.decode(acc.token, options={"verify_signature": False})
    expired = jwt.encode({**claims, "exp": 1}, settings.jwt_secret, algorithm="HS256")
    r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert r.status_code == 401
    assert r.json()["detail"] == "token expired"

    forged = jwt.encode({**claims, "role": "admin"}, "another-secret-of-enough-length!", "HS256")
    r = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401


def test_sign_in_attempts_are_rate_limited(client: TestClient, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(settings, "login_attempts_per_minute", 3)
    acc = register(client, "passenger")  # signs in once: 1 of 3
    codes = [
        client.post(
            "/api/v1/auth/token", data={"username": acc.email, "password": "bad-pass1"}
        ).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 429]
    r = client.post("/api/v1/auth/token", data={"username": acc.email, "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60


def test_create_admin_command_makes_an_admin_who_can_sign_in(client: TestClient) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "create-admin",
            "--email",
            "ops@example.com",
            "--password",
            PASSWORD,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    r = client.post(
        "/api/v1/auth/token", data={"username": "ops@example.com", "password": PASSWORD}
    )
    assert r.status_code == 200
    admin = login(client, "ops@example.com", "", "admin")
    me = client.get("/api/v1/users/me", headers=admin.headers).json()
    assert me["role"] == "admin"
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.cli",
            "create-admin",
            "--email",
            "ops@example.com",
            "--password",
            PASSWORD,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 1
    assert "exists" in again.stderr
