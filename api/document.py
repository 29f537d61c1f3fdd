"""The last touches of the OpenAPI document, on what FastAPI builds from the routes: the
streams' event schemas, the error codes' meanings, the list parameters shared by every
list, and the headers and statuses the edge of the service adds to every answer
(`api.middleware.Edge`), which no route declares itself."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

from api.error_codes import MEANINGS
from api.events import EVENT_MODELS, frame_schemas
from api.middleware import FORM_PATHS
from api.routers.location import BODY_MODELS, OSMAND_SCHEMAS

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}

PARAMETERS = {
    "limit": "Limit",
    "cursor": "Cursor",
}

HEADERS: dict[str, Any] = {
    "X-Request-ID": {
        "description": "This request's id, in the service's logs and the jobs it started: "
        "the one the client sent (letters, digits, `-_.:`, up to 64), or a new one. Quote it "
        "when reporting a problem.",
        "schema": {"type": "string", "maxLength": 64},
    },
    "Idempotent-Replayed": {
        "description": "`true` when the answer is the stored first answer to this "
        "`Idempotency-Key`: nothing was done again.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

RESPONSES: dict[str, Any] = {
    "PayloadTooLarge": {
        "description": "The body is over the size limit (or a batch over its record limit).",
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": _ERROR,
    },
    "UnsupportedMediaType": {
        "description": "The body is not JSON: send `Content-Type: application/json`.",
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": _ERROR,
    },
    "InternalError": {
        "description": "A fault of ours (`internal_error`), logged with the request id.",
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}},
        "content": _ERROR,
    },
}

#: what each path, query or header parameter is, where its route does not say
PARAMETER_MEANINGS = {
    "ride_id": "The ride's id.",
    "driver_id": "The driver's id.",
    "user_id": "The user's id.",
    "payment_id": "The payment's id.",
    "broadcast_id": "The broadcast's id.",
    "pm_id": "The saved card's Stripe id (`pm_...`).",
    "token": "The device's FCM token, as registered.",
    "status": "Only rides in this status.",
    "if-none-match": "The `ETag` of the position last received: a 304 while it is the same.",
    "last-event-id": "The id of the last event received: the stream resumes after it.",
    "stripe-signature": "Stripe's signature of the body (`t=...,v1=...`).",
    "idempotency-key": "Your id of this request: a retry with it replays the first answer.",
}

#: query parameters the streams read themselves, for clients that cannot send headers
STREAM_QUERY = [
    {
        "name": "access_token",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "A stream token from the stream's `stream-token` operation, where no "
        "`Authorization` header can be sent (a browser's EventSource).",
    },
    {
        "name": "last_event_id",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "pattern": r"^\d+-\d+$"},
        "description": "As the `Last-Event-ID` header, where a client cannot set it.",
    },
]

_TOKEN_FORM = {
    "grant_type": "`password`, or left out.",
    "username": "The email.",
    "password": "The password.",
    "scope": "Not used; leave out.",
    "client_id": "Not used; leave out.",
    "client_secret": "Not used; leave out.",
}


#: schemas FastAPI names after their route, renamed for what they are
RENAMED = {"Body_create_token": "TokenForm", "Body_token_api_v1_auth_token_post": "TokenForm"}


def _rename(doc: dict[str, Any], schemas: dict[str, Any]) -> None:
    for old, new in RENAMED.items():
        if old not in schemas:
            continue
        schemas[new] = schemas.pop(old)
        schemas[new]["title"] = new
        schemas[new]["description"] = "The OAuth2 password form: the email as `username`."
        for prop, meaning in _TOKEN_FORM.items():
            if prop in schemas[new].get("properties", {}):
                schemas[new]["properties"][prop]["description"] = meaning
        text = json.dumps(doc["paths"]).replace(
            f'"#/components/schemas/{old}"', f'"#/components/schemas/{new}"'
        )
        doc["paths"] = json.loads(text)


def _examples() -> dict[str, Any]:
    """Real requests and answers, one per operation, written by the tour in
    `tests/workers/test_examples.py` from a run of the service."""
    found = files("api").joinpath("examples.json")
    return json.loads(found.read_text(encoding="utf-8")) if found.is_file() else {}


def _recorded(value: Any) -> dict[str, Any]:
    return {"recorded": {"summary": "From a run of the service", "value": value}}


def _add_examples(doc: dict[str, Any]) -> None:
    examples = _examples()
    for methods in doc.get("paths", {}).values():
        for op in methods.values():
            seen = examples.get(op.get("operationId"))
            if seen is None:
                continue
            body = op.get("requestBody", {}).get("content", {})
            form = "application/x-www-form-urlencoded"
            ctype = form if seen.get("form") else "application/json"
            if seen["request"] is not None and ctype in body:
                body[ctype]["examples"] = _recorded(seen["request"])
            for param in op.get("parameters", []):
                value = (seen.get("query") or {}).get(param.get("name"))
                if value is not None:
                    param["example"] = value
            answer = op.get("responses", {}).get(seen["status"], {})
            for content in answer.get("content", {}).values():
                if seen["response"] is not None:
                    content["examples"] = _recorded(seen["response"])


def _success(answer: dict[str, Any], schemas: dict[str, Any], op: dict[str, Any]) -> str:
    """A success answer's description: what its schema is, rather than FastAPI's
    "Successful Response"."""
    for content in answer.get("content", {}).values():
        ref = content.get("schema", {}).get("$ref", "")
        if ref:
            found = schemas.get(ref.rsplit("/", 1)[1], {}).get("description", "")
            if found:
                return str(found).split("\n\n")[0]
    return "Done: no content." if not answer.get("content") else str(op.get("summary", ""))


def finish(doc: dict[str, Any]) -> None:
    servers = doc.get("servers") or [{"url": ""}]
    doc["externalDocs"] = {
        "description": "The streams' protocol and events, as AsyncAPI 3",
        "url": f"{servers[0]['url']}/asyncapi.json",
    }
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, model in {**EVENT_MODELS, **{m.__name__: m for m in BODY_MODELS}}.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub, sub_schema in schema.pop("$defs", {}).items():
            schemas.setdefault(sub, sub_schema)
        schemas[name] = schema
    schemas.update(frame_schemas())
    schemas.update(OSMAND_SCHEMAS)
    _rename(doc, schemas)
    _add_examples(doc)
    if "ErrorCode" in schemas:
        schemas["ErrorCode"]["description"] = (
            "What went wrong, for programs; `x-enumDescriptions` says what each code means."
        )
        schemas["ErrorCode"]["x-enumDescriptions"] = dict(MEANINGS)
    parameters = components.setdefault("parameters", {})
    headers = components.setdefault("headers", {})
    headers.update(HEADERS)
    components.setdefault("responses", {}).update(RESPONSES)
    request_id = {"$ref": "#/components/headers/X-Request-ID"}
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            if op.get("operationId", "").startswith("stream_"):
                names = {p.get("name") for p in op.get("parameters", [])}
                op.setdefault("parameters", []).extend(
                    dict(p) for p in STREAM_QUERY if p["name"] not in names
                )
            for param in op.get("parameters", []):
                meaning = PARAMETER_MEANINGS.get(str(param.get("name", "")).lower())
                if meaning and "description" not in param:
                    param["description"] = meaning
            for i, param in enumerate(op.get("parameters", [])):
                shared = PARAMETERS.get(param.get("name", ""))
                if shared and param.get("in") == "query":
                    parameters.setdefault(shared, param)
                    op["parameters"][i] = {"$ref": f"#/components/parameters/{shared}"}
            responses = op.setdefault("responses", {})
            if method in ("post", "put", "patch"):  # the edge reads every such body
                responses.setdefault("413", {"$ref": "#/components/responses/PayloadTooLarge"})
                if not path.startswith(FORM_PATHS):  # forms are welcome there
                    responses.setdefault(
                        "415", {"$ref": "#/components/responses/UnsupportedMediaType"}
                    )
            responses.setdefault("500", {"$ref": "#/components/responses/InternalError"})
            for status, answer in responses.items():
                if status.startswith("2") and answer.get("description") in (
                    "Successful Response",
                    "",
                    None,
                ):
                    answer["description"] = _success(answer, schemas, op)
            for answer in responses.values():
                if "$ref" not in answer:
                    answer.setdefault("headers", {}).setdefault("X-Request-ID", request_id)
            if any(
                str(p.get("name", "")).lower() == "idempotency-key"
                for p in op.get("parameters", [])
            ):
                for status, answer in responses.items():
                    if status.startswith("2"):
                        answer["headers"]["Idempotent-Replayed"] = {
                            "$ref": "#/components/headers/Idempotent-Replayed"
                        }
