"""Events (`GET /v1/events`) and the webhook-endpoint API (`/v1/webhook_endpoints`)."""

from __future__ import annotations

from devtools.stripe_standin.errors import invalid, no_such
from devtools.stripe_standin.http import Ctx, route
from devtools.stripe_standin.params import apply_metadata
from devtools.stripe_standin.payment_intents import _created_filter
from devtools.stripe_standin.state import DEFAULT_API_VERSION, Obj, State, new_id, now
from devtools.stripe_standin.webhooks import Endpoint


@route("GET", "/v1/events/{id}")
def retrieve_event(ctx: Ctx) -> Obj:
    ctx.params.check([])
    return ctx.state.get(ctx.arg("id"), "event")


@route("GET", "/v1/events")
def list_events(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(
        ["created", "delivery_success", "limit", "starting_after", "ending_before", "type", "types"]
    )
    kind = p.string("type")
    kinds = p.strings("types")
    if kind and kinds:
        raise invalid("You may only specify one of these parameters: type, types.", param="type")
    created = _created_filter(p)

    def wanted(event: Obj) -> bool:
        if kinds is not None and event["type"] not in kinds:
            return False
        if kind is not None:
            if kind.endswith("*"):
                if not event["type"].startswith(kind[:-1]):
                    return False
            elif event["type"] != kind:
                return False
        return bool(created(event))

    return ctx.state.page(ctx.state.all("event", wanted), p, "/v1/events")


# webhook endpoints -----------------------------------------------------------


def _events_param(ctx: Ctx, required: bool) -> list[str] | None:
    events = ctx.params.strings("enabled_events")
    if events is None:
        if required:
            raise invalid(
                "Missing required param: enabled_events.",
                param="enabled_events",
                code="parameter_missing",
            )
        return None
    if not events:
        raise invalid("enabled_events must not be empty.", param="enabled_events")
    return events


def _url_param(ctx: Ctx, required: bool) -> str | None:
    url = ctx.params.string("url", required=required)
    if url is not None and not url.startswith(("http://", "https://")):
        raise invalid(f"Invalid URL: {url}", param="url", code="url_invalid")
    return url


@route("POST", "/v1/webhook_endpoints")
def create_webhook_endpoint(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["api_version", "connect", "description", "enabled_events", "metadata", "url"])
    url = _url_param(ctx, True) or ""
    events = _events_param(ctx, True)
    secret = "whsec_" + new_id("", 32)
    obj: Obj = {
        "id": new_id("we_"),
        "object": "webhook_endpoint",
        "api_version": p.string("api_version") or DEFAULT_API_VERSION,
        "application": None,
        "created": now(),
        "description": p.string("description"),
        "enabled_events": events,
        "livemode": False,
        "metadata": apply_metadata({}, p.metadata()),
        "status": "enabled",
        "url": url,
    }
    ctx.state.endpoints[obj["id"]] = Endpoint(obj["id"], url, secret, events, True, obj)
    return {**obj, "secret": secret}


def _endpoint(state: State, ident: str) -> Endpoint:
    endpoint = state.endpoints.get(ident)
    if endpoint is None or endpoint.api_object is None:
        raise no_such("webhook endpoint", ident)
    return endpoint


@route("GET", "/v1/webhook_endpoints/{id}")
def retrieve_webhook_endpoint(ctx: Ctx) -> Obj:
    ctx.params.check([])
    endpoint = _endpoint(ctx.state, ctx.arg("id"))
    assert endpoint.api_object is not None
    return endpoint.api_object


@route("POST", "/v1/webhook_endpoints/{id}")
def update_webhook_endpoint(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["description", "disabled", "enabled_events", "metadata", "url"])
    endpoint = _endpoint(ctx.state, ctx.arg("id"))
    obj = endpoint.api_object
    assert obj is not None
    url = _url_param(ctx, False)
    if url is not None:
        endpoint.url = obj["url"] = url
    events = _events_param(ctx, False)
    if events is not None:
        endpoint.events = obj["enabled_events"] = events
    disabled = p.boolean("disabled")
    if disabled is not None:
        endpoint.enabled = not disabled
        obj["status"] = "disabled" if disabled else "enabled"
    if p.has("description"):
        obj["description"] = p.string("description")
    obj["metadata"] = apply_metadata(obj["metadata"], p.metadata())
    return obj


@route("DELETE", "/v1/webhook_endpoints/{id}")
def delete_webhook_endpoint(ctx: Ctx) -> Obj:
    ctx.params.check([])
    endpoint = _endpoint(ctx.state, ctx.arg("id"))
    del ctx.state.endpoints[endpoint.id]
    return {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}


@route("GET", "/v1/webhook_endpoints")
def list_webhook_endpoints(ctx: Ctx) -> Obj:
    p = ctx.params
    p.check(["limit", "starting_after", "ending_before"])
    items = [e.api_object for e in ctx.state.endpoints.values() if e.api_object is not None]
    items.reverse()
    return ctx.state.page(items, p, "/v1/webhook_endpoints")
