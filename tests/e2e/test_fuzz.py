"""Schemathesis against the app's own OpenAPI document, over HTTP to a real uvicorn
process: valid input as each role (no 5xx, every answer as documented, authentication
enforced where declared), the object routes on a real ride, invalid input (refused with a
documented 4xx), and anonymous callers. A bounded number of examples here;
`bench/fuzz.py` runs the long one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from infra.db import session_scope
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
        with session_scope() as session:
            create_user(session, email=email, password=PASSWORD, name="Fuzz", role="admin")
    else:
        body = {"email": email, "password": PASSWORD, "name": "Fuzz", "role": role}
        httpx.post(f"{api}/api/v1/auth/register", json=body).raise_for_status()
    token = httpx.post(
        f"{api}/api/v1/auth/token", data={"username": email, "password": PASSWORD}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@dataclass
class World:
    """Each role signed in, and real objects of theirs: a ride the passenger requested and
    the driver accepted, so object routes are fuzzed on paths that reach their code, not
    only on random ids that end in a 404."""

    headers: dict[str, dict[str, str]]
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def world(db: None, api: str) -> World:
    import httpx

    from tests.factories import grant_offer

    w = World({role: _headers(api, role) for role in ("passenger", "driver", "admin")})
    ride = httpx.post(
        f"{api}/api/v1/rides",
        json={
            "pickup": {"lat": 52.52, "lng": 13.405},
            "dropoff": {"lat": 52.5, "lng": 13.45},
            "payment": "cash",
        },
        headers=w.headers["passenger"],
    )
    assert ride.status_code == 201, ride.text
    me = httpx.get(f"{api}/api/v1/users/me", headers=w.headers["driver"]).json()
    grant_offer(ride.json()["id"], me["id"])
    accepted = httpx.post(
        f"{api}/api/v1/rides/{ride.json()['id']}/accept", headers=w.headers["driver"]
    )
    assert accepted.status_code == 200, accepted.text
    w.ids = {"ride_id": ride.json()["id"], "driver_id": me["id"], "user_id": me["id"]}
    return w


def _operations(api: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 40
    # event streams never end by themselves: tested in test_sse.py
    return [op for op in operations if not op.path.endswith("/events")]


def _fuzz(
    operations: list[Any],
    callers: list[dict[str, str]],
    checks_: list[Any],
    mode: GenerationMode = GenerationMode.POSITIVE,
    ids: dict[str, str] | None = None,
) -> list[tuple[str, str]]:
    failures: list[tuple[str, str]] = []
    for operation in operations:
        fixed = {k: v for k, v in (ids or {}).items() if "{" + k + "}" in operation.path}
        if ids is not None and not fixed:
            continue  # this run is about object routes on real objects

        @given(case=operation.as_strategy(mode, path_parameters=fixed or None))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            for headers in callers:
                case.call_and_validate(headers=headers, checks=checks_, timeout=10)

        try:
            run()
        except Unsatisfiable:
            # nothing of it can be made invalid (no parameters, no body): nothing to send
            assert mode is GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # every operation's failure is kept
            failures.append((f"{operation.label} ({mode.value})", str(exc)[:2000]))
    return failures


def _report(failures: list[tuple[str, str]]) -> str:
    return "\n\n".join(f"{label}: {text}" for label, text in failures)


def test_every_operation_as_every_role(api: str, world: World) -> None:
    """Valid input, every role, random ids: no 5xx, every answer as documented, and no
    operation that declares authentication works without it."""
    failures = _fuzz(_operations(api), list(world.headers.values()), [*CHECKS, checks.ignored_auth])
    assert not failures, _report(failures)


def test_object_routes_on_real_objects(api: str, world: World) -> None:
    """The same on the paths of a real ride (and its driver): the handlers' own code runs,
    not only the 404 of an unknown id."""
    failures = _fuzz(_operations(api), list(world.headers.values()), CHECKS, ids=world.ids)
    assert not failures, _report(failures)


def test_invalid_input_is_refused_with_a_4xx(api: str, world: World) -> None:
    """Input outside the document (wrong types, missing fields, out of range) is refused
    with a documented 4xx, never accepted and never a 5xx."""
    failures = _fuzz(
        _operations(api),
        [world.headers["passenger"], world.headers["admin"]],
        [*CHECKS, checks.negative_data_rejection],
        GenerationMode.NEGATIVE,
    )
    assert not failures, _report(failures)


def test_anonymous_callers_get_401_never_a_5xx(api: str, world: World) -> None:
    failures = _fuzz(_operations(api), [{}], [*CHECKS, checks.ignored_auth])
    assert not failures, _report(failures)
