"""The served OpenAPI document names things as a person would: what generated clients
call their functions (operationIds), the one-line summaries, the tags, and who runs it."""

from __future__ import annotations

import re
from typing import Any

import pytest

VERBS = {
    "accept", "cancel", "check", "complete", "confirm", "create", "decline", "detach",
    "estimate", "get", "list", "mark", "post", "rate", "receive", "record", "refresh",
    "register", "report", "request", "set", "start", "stream", "unregister",
}  # fmt: skip


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    from api.main import app

    return app.openapi()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, ms in doc["paths"].items() for m, op in ms.items()]


def test_every_operation_id_is_a_short_verb_on_its_resource(doc: dict[str, Any]) -> None:
    ids = [op["operationId"] for _m, _p, op in _operations(doc)]
    assert len(ids) == len(set(ids)) == 59
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)+", op_id), op_id
        assert "api_v1" not in op_id, op_id
        assert not op_id.endswith(("_get", "_post")), op_id
        assert op_id.split("_")[0] in VERBS, op_id


def test_every_operation_has_a_summary_of_its_own(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        summary = op.get("summary", "")
        generated = op["operationId"].replace("_", " ").title()
        assert summary, (method, path)
        assert summary != generated, (method, path, summary)
        assert len(summary) <= 60, (method, path, summary)
        assert not summary.endswith("."), (method, path, summary)


def test_tags_are_defined_and_described_and_the_service_says_who_runs_it(
    doc: dict[str, Any],
) -> None:
    defined = {t["name"]: t.get("description", "") for t in doc["tags"]}
    used = {t for _m, _p, op in _operations(doc) for t in op.get("tags", [])}
    assert used == set(defined)
    assert all(defined.values())
    assert doc["servers"][0]["url"].startswith("http")
    assert doc["info"]["contact"]["name"]
    assert doc["info"]["license"]["name"]


def test_a_route_without_a_name_is_refused() -> None:
    from api.operations import name_operations

    with pytest.raises(RuntimeError, match="no entry"):
        name_operations({"paths": {"/api/v1/new": {"get": {}}}})


def test_every_operation_is_described(doc: dict[str, Any]) -> None:
    for method, path, op in _operations(doc):
        description = op.get("description", "")
        assert len(description) >= 40, (method, path, description)
        assert description != op["summary"], (method, path)


def test_every_operation_says_how_it_is_entered_and_who_may_call(doc: dict[str, Any]) -> None:
    from api.operations import PUBLIC

    schemes = set(doc["components"]["securitySchemes"])
    assert {"OAuth2PasswordBearer", "streamToken", "deviceKey", "stripeSignature"} <= schemes
    for method, path, op in _operations(doc):
        assert "security" in op, (method, path)
        named = {name for requirement in op["security"] for name in requirement}
        assert named <= schemes, (method, path, named)
        if op["operationId"] in PUBLIC:
            assert (op["security"], op["x-roles"]) == ([], []), (method, path)
        elif op["operationId"] != "receive_stripe_webhook":
            assert op["x-roles"], (method, path)
            assert "Who may call:" in op["description"], (method, path)
    by_id = {op["operationId"]: op for _m, _p, op in _operations(doc)}
    assert by_id["request_ride"]["x-roles"] == ["passenger"]
    assert by_id["accept_offer"]["x-roles"] == ["driver"]
    assert by_id["get_overview"]["x-roles"] == ["admin"]
    assert by_id["report_location"]["x-roles"] == ["driver"]
    assert by_id["get_ride"]["x-roles"] == ["passenger", "driver", "admin"]


def test_these_answers_are_named_models(doc: dict[str, Any]) -> None:
    by_id = {op["operationId"]: op for _m, _p, op in _operations(doc)}
    for op_id in (
        "set_driver_status",
        "decline_offer",
        "check_health",
        "check_readiness",
        "get_dispatch_stats",
        "list_rating_tags",
    ):
        schema = by_id[op_id]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema.get("$ref", "").startswith("#/components/schemas/"), (op_id, schema)


def test_every_schema_property_and_parameter_is_described(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]

    def described(node: dict[str, Any]) -> bool:
        if node.get("description"):
            return True
        ref = node.get("$ref", "")  # a reference alone: its target says what it is
        return bool(ref) and bool(schemas[ref.rsplit("/", 1)[1]].get("description"))

    assert len(schemas) > 90
    undescribed = [name for name, s in schemas.items() if not s.get("description")]
    assert not undescribed, undescribed
    fields = [
        f"{name}.{prop}"
        for name, s in schemas.items()
        for prop, p in s.get("properties", {}).items()
        if not described(p)
    ]
    assert not fields, fields
    params = [
        (op["operationId"], p["name"])
        for methods in doc["paths"].values()
        for op in methods.values()
        for p in op.get("parameters", [])
        if "name" in p and not p.get("description")
    ]
    assert not params, params
    shared = doc["components"]["parameters"]
    assert {"Limit", "Cursor"} <= set(shared)
    assert all(p.get("description") for p in shared.values())
