"""The streams as an AsyncAPI 3 document (`GET /asyncapi.json`, and `docs/asyncapi.json`).

Built from `api.events.STREAMS`: a channel per stream, a message per event name whose
payload is the event's model, the same schemas the OpenAPI document names. The SSE
protocol itself (ids, resume, keep-alives, the retry hint) is in each channel and in the
`x-sse` extension of each operation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from api.events import EVENT_MODELS, RETRY_MS, STREAMS

KEEPALIVE_S = 15

_SSE = (
    "Server-Sent Events over one long `GET` (`Accept: text/event-stream`). The first line "
    f"is `retry: {RETRY_MS}`: reconnect after {RETRY_MS // 1000} s when the stream drops. "
    "Every event is a frame `id: <stream id>`, `event: <name>`, `data: <one JSON object>`. "
    "Reconnect with the `Last-Event-ID` header (or `?last_event_id=` where a client cannot "
    "set headers) set to the last id received: the events after it arrive in order, none "
    f"lost or repeated. A comment line (`: keep-alive`) arrives every {KEEPALIVE_S} s while "
    "nothing else does: a client that hears nothing for twice that should reconnect."
)


def _message(event: str, model_name: str, stream_id: str) -> dict[str, Any]:
    model = EVENT_MODELS[model_name]
    return {
        "name": event,
        "title": event,
        "summary": (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " "),
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "description": "The frame's SSE fields besides `data`.",
            "properties": {
                "id": {
                    "type": "string",
                    "pattern": r"^\d+-\d+$",
                    "description": "The event's id in the stream: send it back as "
                    "`Last-Event-ID` to resume after it.",
                },
                "event": {"type": "string", "const": event, "description": "The event name."},
            },
            "required": ["id", "event"],
        },
        "payload": {"$ref": f"#/components/schemas/{model_name}"},
    }


def build(public_url: str) -> dict[str, Any]:
    url = urlsplit(public_url)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for stream in STREAMS:
        channel_id = stream.operation_id.removeprefix("stream_")
        parameters = {}
        if "{ride_id}" in stream.path:
            parameters["ride_id"] = {"description": "The ride's id (a uuid)."}
        channel_messages = {}
        for event, model in stream.events.items():
            key = f"{channel_id}.{event}"
            messages[key] = _message(event, model.__name__, channel_id)
            channel_messages[event] = {"$ref": f"#/components/messages/{key}"}
        channels[channel_id] = {
            "address": stream.path,
            "title": stream.title,
            "description": f"{stream.description}\n\n{_SSE}",
            "servers": [{"$ref": "#/servers/api"}],
            "parameters": parameters,
            "messages": channel_messages,
        }
        operations[stream.operation_id] = {
            "action": "receive",
            "title": stream.title,
            "summary": f"Follow {stream.title[0].lower()}{stream.title[1:]} (SSE)",
            "description": "Open with `GET` and the `Authorization: Bearer` header, or with "
            f"`?access_token=` holding a stream token from `{stream.token_from}` (60 s; "
            "enough to connect: an open stream is not cut when it expires).",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [
                {"$ref": f"#/channels/{channel_id}/messages/{event}"} for event in stream.events
            ],
            "security": [
                {"$ref": "#/components/securitySchemes/bearer"},
                {"$ref": "#/components/securitySchemes/streamToken"},
            ],
            "bindings": {
                "http": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {
                            "access_token": {
                                "type": "string",
                                "description": "A stream token, where no header can be sent.",
                            },
                            "last_event_id": {
                                "type": "string",
                                "description": "Resume after this id, where the "
                                "`Last-Event-ID` header cannot be sent.",
                            },
                        },
                    },
                    "bindingVersion": "0.3.0",
                }
            },
            "x-sse": {
                "resume": "Last-Event-ID",
                "retryMs": RETRY_MS,
                "keepAliveS": KEEPALIVE_S,
                "openApiOperationId": stream.operation_id,
            },
        }
    schemas: dict[str, Any] = {}
    for name, model in EVENT_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return {
        "asyncapi": "3.1.0",
        "id": "urn:ridehail:streams",
        "info": {
            "title": "ridehail streams",
            "version": "1.0",
            "description": "The live half of the ridehail API: what a passenger's, a "
            "driver's and the ops page's streams carry. The HTTP half is the OpenAPI "
            "document at `/openapi.json`; both name the same event schemas.\n\n" + _SSE,
            "contact": {"name": "ridehail backend team", "url": f"{public_url}/docs"},
            "license": {"name": "Proprietary"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "api": {
                "host": url.netloc,
                "protocol": url.scheme or "http",
                "description": "This deployment.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The access token from `create_token`.",
                },
                "streamToken": {
                    "type": "httpApiKey",
                    "name": "access_token",
                    "in": "query",
                    "description": "A stream token from the stream's `stream-token` operation.",
                },
            },
        },
    }
