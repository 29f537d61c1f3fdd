"""Schemathesis against the app's own OpenAPI document, over HTTP to a real uvicorn
process, signed in as each role: no 5xx, and every answer as documented (status, content
type, body schema). A bounded number of examples here; `bench/fuzz.py` runs the long one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from infra.db import unit_of_work
from infra.users import create_user
from tests.factories import PASSWORD
from tests.services import running_api

EXAMPLES = int(os.environ.get("RIDEHAIL_FUZZ_EXAMPLES", "8"))
# The promise checked: no 5xx, and every answer as documented. (Schemathesis's
# positive_data_acceptance would also fail a schema-valid request that a business rule
# refuses - an impossible jump, a ride already open - which the schema cannot express.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def api() -> Iterator[str]:
    with running_api({"RIDEHAIL_PING_RATE_LIMIT": "1000000"}) as base:
        yield base


def _headers(api: str, role: str) -> dict[str, str]:
    import httpx

    email = f"fuzz-{role}@example.com"
    if role == "admin":
        with unit_of_work() as session:
            create_user(session, email=email, password=PASSWORD, name="Fuzz", role="admin")
    else:
        body = {"email": email, "password": PASSWORD, "name": "Fuzz", "role": role}
        httpx.post(f"{api}/api/v1/auth/register", json=body).raise_for_status()
    token = httpx.post(
        f"{api}/api/v1/auth/token", data={"username": email, "password": PASSWORD}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def signed_in(db: None, api: str) -> dict[str, dict[str, str]]:
    return {role: _headers(api, role) for role in ("passenger", "driver", "admin")}


def test_every_operation_as_every_role(api: str, signed_in: dict[str, dict[str, str]]) -> None:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    failures: list[tuple[str, str]] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        if operation.path.endswith("/events"):
            continue  # event streams never end by themselves: tested in test_sse.py

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            for headers in signed_in.values():
                case.call_and_validate(headers=headers, checks=CHECKS, timeout=10)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure is kept
            failures.append((operation.label, str(exc)[:2000]))
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures)
