"""Text the database cannot store (a NUL character) or that is not Unicode (a lone
surrogate, as JSON's \\ud800 escape allows) is bad input: 422, never a 500."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from infra.db import session_scope
from infra.users import create_user
from tests.factories import PASSWORD, login


def _admin(client: TestClient) -> dict[str, str]:
    with session_scope() as session:
        create_user(
            session, email="text-admin@example.com", password=PASSWORD, name="A", role="admin"
        )
    return login(client, "text-admin@example.com", "", "admin").headers


def test_nul_characters_and_lone_surrogates_are_refused_with_422(client: TestClient) -> None:
    admin = _admin(client)
    for title in ("a\u0000b", "a\udb68b"):
        body = json.dumps({"title": title, "body": "hello"})
        r = client.post(
            "/api/v1/admin/notifications/broadcast",
            content=body,
            headers={**admin, "content-type": "application/json"},
        )
        assert r.status_code == 422, (title, r.text)
    register = json.dumps(
        {"email": "n@example.com", "password": "password-1", "name": "a\u0000b", "role": "driver"}
    )
    r = client.post(
        "/api/v1/auth/register", content=register, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
