"""The stand-in's own endpoints (no API key): webhooks, faults, the request record, reset,
settings, and what a customer would do in a browser (3-D Secure, Connect onboarding)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from devtools.stripe_standin import connect, payment_intents, setup_intents
from devtools.stripe_standin.errors import invalid, no_such
from devtools.stripe_standin.http import STATE, json_response
from devtools.stripe_standin.params import decode_body
from devtools.stripe_standin.state import Fault, Obj, State, current_request, new_id
from devtools.stripe_standin.webhooks import Endpoint

_STRIPE_JS = Path(__file__).with_name("stripe.js")


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    content_type = request.content_type
    if raw and content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        content_type = "application/json"
    return decode_body(raw, content_type)


def _state(request: web.Request) -> State:
    return request.app[STATE]


# webhooks --------------------------------------------------------------------


async def register_webhook(request: web.Request) -> web.Response:
    """localstripe's `POST /_config/webhooks/{name}` (form fields url, secret, events[])."""
    data = await _body(request)
    url = data.get("url")
    secret = data.get("secret")
    events = data.get("events")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise invalid("url must be an http(s) URL", param="url")
    if not isinstance(secret, str) or not secret:
        raise invalid("secret is required", param="secret")
    if events is not None:
        if isinstance(events, str):
            events = [e for e in events.split(",") if e]
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise invalid("events must be a list of event types", param="events")
    name = request.match_info["name"]
    state = _state(request)
    state.endpoints[name] = Endpoint(name, url, secret, events)
    return json_response(state.endpoints[name].describe())


async def list_webhooks(request: web.Request) -> web.Response:
    return json_response([e.describe() for e in _state(request).endpoints.values()])


async def delete_webhook(request: web.Request) -> web.Response:
    state = _state(request)
    removed = state.endpoints.pop(request.match_info["name"], None)
    if removed is None:
        raise no_such("webhook", request.match_info["name"])
    return json_response({"deleted": removed.id})


async def list_deliveries(request: web.Request) -> web.Response:
    deliveries = _state(request).deliverer.deliveries
    event = request.query.get("event")
    kind = request.query.get("type")
    endpoint = request.query.get("endpoint")
    out = [
        d
        for d in deliveries
        if (event is None or d["event"] == event)
        and (kind is None or d["type"] == kind)
        and (endpoint is None or d["endpoint"] == endpoint)
    ]
    return json_response(out)


async def clear_deliveries(request: web.Request) -> web.Response:
    deliveries = _state(request).deliverer.deliveries
    count = len(deliveries)
    deliveries.clear()
    return json_response({"cleared": count})


# faults ----------------------------------------------------------------------

_FAULT_KEYS = {
    "path_prefix",
    "path_suffix",
    "method",
    "status",
    "delay_s",
    "after",
    "count",
    "error",
    "should_retry",
    "label",
}


async def add_fault(request: web.Request) -> web.Response:
    data = await _body(request)
    unknown = set(data) - _FAULT_KEYS
    if unknown:
        raise invalid(f"Unknown fault field(s): {', '.join(sorted(unknown))}")
    try:
        fault = Fault(
            id=new_id("fault_", 10),
            path_prefix=str(data.get("path_prefix") or "/v1/"),
            path_suffix=str(data["path_suffix"]) if data.get("path_suffix") else None,
            method=str(data["method"]).upper() if data.get("method") else None,
            status=int(data["status"]) if data.get("status") not in (None, "") else None,
            delay_s=float(data.get("delay_s") or 0),
            after=_truthy(data.get("after", True)),
            count=int(data.get("count", 1)),
            error=data.get("error") if isinstance(data.get("error"), dict) else None,
            should_retry=(
                _truthy(data["should_retry"]) if data.get("should_retry") is not None else None
            ),
            label=str(data["label"]) if data.get("label") else None,
        )
    except (TypeError, ValueError) as exc:
        raise invalid(f"Invalid fault: {exc}") from exc
    if fault.status is None and not fault.delay_s:
        raise invalid("A fault needs a `status` or a `delay_s`.")
    if fault.status is not None and not 400 <= fault.status <= 599:
        raise invalid("`status` must be an HTTP error status (400-599).", param="status")
    _state(request).faults.append(fault)
    return json_response(fault.describe())


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


async def list_faults(request: web.Request) -> web.Response:
    return json_response([f.describe() for f in _state(request).faults])


async def faults_served(request: web.Request) -> web.Response:
    """Each request a fault struck (kept when the fault itself is deleted or cleared):
    `{fault, label, method, path, status, delay_s, at}`; `?label=` narrows it."""
    label = request.query.get("label")
    served = _state(request).faults_served
    return json_response([f for f in served if label is None or f["label"] == label])


async def clear_faults(request: web.Request) -> web.Response:
    faults = _state(request).faults
    count = len(faults)
    faults.clear()
    return json_response({"cleared": count})


async def resend_events(request: web.Request) -> web.Response:
    """Deliver events again, as the Dashboard's "Resend" does: `{"events": [ids], "times":
    1}` schedules each event `times` more times, in the order given (a caller shuffles them
    to deliver out of order). Each delivery is the event as it was, signed anew."""
    data = await _body(request)
    state = _state(request)
    ids = data.get("events")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise invalid("`events` must be a list of event ids.", param="events")
    try:
        times = int(data.get("times", 1))
    except (TypeError, ValueError) as exc:
        raise invalid("`times` must be a number.", param="times") from exc
    if not 1 <= times <= 10:
        raise invalid("`times` must be between 1 and 10.", param="times")
    label = data.get("label")
    events = [state.get(ident, "event", param="events", status=400) for ident in ids]
    for _ in range(times):
        for event in events:
            state.deliverer.schedule(event, label=str(label) if label else None)
    return json_response({"scheduled": len(events) * times})


async def delete_fault(request: web.Request) -> web.Response:
    faults = _state(request).faults
    ident = request.match_info["id"]
    found = [f for f in faults if f.id == ident]
    if not found:
        raise no_such("fault", ident)
    faults.remove(found[0])
    return json_response(found[0].describe())


# the request record ----------------------------------------------------------


async def list_requests(request: web.Request) -> web.Response:
    prefix = request.query.get("path_prefix")
    method = request.query.get("method")
    out = [
        r
        for r in _state(request).requests
        if (prefix is None or r["path"].startswith(prefix))
        and (method is None or r["method"] == method.upper())
    ]
    # how many of the oldest records were let go past the cap: a checker reading this
    # record as evidence must fail when it is not whole
    return json_response(out, headers={"Records-Dropped": str(_state(request).requests_dropped)})


async def clear_requests(request: web.Request) -> web.Response:
    requests = _state(request).requests
    count = len(requests)
    requests.clear()
    _state(request).requests_dropped = 0
    return json_response({"cleared": count})


# reset and settings ----------------------------------------------------------


async def reset(request: web.Request) -> web.Response:
    data = await _body(request)
    webhooks = _truthy(data.get("webhooks", False))
    await _state(request).reset(webhooks=webhooks)
    _reset_localstripe()
    return json_response({"reset": True, "webhooks_cleared": webhooks})


async def flush_data(request: web.Request) -> web.Response:
    """localstripe's `DELETE /_config/data`."""
    await _state(request).reset()
    _reset_localstripe()
    return web.Response()


def _reset_localstripe() -> None:
    from localstripe.resources import store

    store.clear()


async def get_settings(request: web.Request) -> web.Response:
    return json_response(vars(_state(request).settings))


async def update_settings(request: web.Request) -> web.Response:
    data = await _body(request)
    settings = _state(request).settings
    try:
        settings.update(data)
    except (TypeError, ValueError) as exc:
        raise invalid(str(exc)) from exc
    return json_response(vars(settings))


# what a customer does in a browser -------------------------------------------


def _intent(state: State, ident: str) -> Obj:
    intent = state.find(ident)
    if intent is None or intent.get("object") not in ("payment_intent", "setup_intent"):
        raise no_such("intent", ident)
    return intent


def _authenticate(request: web.Request, intent: Obj, success: bool) -> None:
    state = _state(request)
    current_request.set((None, None))  # the customer's action, not an API request
    if intent["object"] == "payment_intent":
        payment_intents.authenticate(state, intent, success)
    else:
        setup_intents.authenticate(state, intent, success)


async def authenticate_intent(request: web.Request) -> web.Response:
    """Complete (`{"success": true}`, the default) or fail an intent's 3-D Secure."""
    data = await _body(request)
    state = _state(request)
    intent = _intent(state, request.match_info["id"])
    _authenticate(request, intent, _truthy(data.get("success", True)))
    return json_response(state.export(intent))


async def expire_intent(request: web.Request) -> web.Response:
    state = _state(request)
    intent = _intent(state, request.match_info["id"])
    if intent["object"] != "payment_intent":
        raise invalid("Only PaymentIntents expire.")
    current_request.set((None, None))
    payment_intents.expire(state, intent)
    return json_response(state.export(intent))


async def three_d_secure_page(request: web.Request) -> web.StreamResponse:
    """The URL in `next_action`: opening it passes the challenge (`?fail=1` fails it)."""
    state = _state(request)
    intent = _intent(state, request.match_info["id"])
    success = not _truthy(request.query.get("fail", ""))
    _authenticate(request, intent, success)
    return_url = request.query.get("return_url")
    if return_url:
        key = "payment_intent" if intent["object"] == "payment_intent" else "setup_intent"
        query = urlencode(
            {
                key: intent["id"],
                f"{key}_client_secret": intent["client_secret"],
                "redirect_status": "succeeded" if success else "failed",
            }
        )
        raise web.HTTPFound(f"{return_url}{'&' if '?' in return_url else '?'}{query}")
    outcome = "completed" if success else "failed"
    return web.Response(
        text=f"<html><body>3-D Secure {outcome} for {html.escape(intent['id'])}.</body></html>",
        content_type="text/html",
    )


async def onboard_account(request: web.Request) -> web.Response:
    state = _state(request)
    account = state.find(request.match_info["id"], "account")
    if account is None:
        raise no_such("account", request.match_info["id"])
    current_request.set((None, None))
    connect.onboard(state, account)
    return json_response(state.export(account))


async def onboarding_page(request: web.Request) -> web.StreamResponse:
    """The URL of an account link: opening it completes the account's onboarding."""
    state = _state(request)
    account = state.find(request.match_info["id"], "account")
    if account is None:
        raise no_such("account", request.match_info["id"])
    current_request.set((None, None))
    connect.onboard(state, account)
    return_url = request.query.get("return_url")
    if return_url:
        raise web.HTTPFound(return_url)
    return web.Response(
        text=f"<html><body>Onboarding completed for {html.escape(account['id'])}.</body></html>",
        content_type="text/html",
    )


async def stripe_js(request: web.Request) -> web.Response:
    """Stripe.js for pages that use this stand-in (`<script src=".../js.stripe.com/v3/">`)."""
    return web.Response(
        body=_STRIPE_JS.read_bytes(),
        content_type="application/javascript",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"},
    )


async def healthz(request: web.Request) -> web.Response:
    state = _state(request)
    return json_response(
        {
            "status": "ok",
            "objects": len(state.objects),
            "webhooks": len(state.endpoints),
            "pending_deliveries": state.deliverer.pending,
        }
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/_config/webhooks/{name}", register_webhook)
    r.add_get("/_config/webhooks", list_webhooks)
    r.add_delete("/_config/webhooks/{name}", delete_webhook)
    r.add_get("/_config/webhook_deliveries", list_deliveries)
    r.add_delete("/_config/webhook_deliveries", clear_deliveries)
    r.add_post("/_config/faults", add_fault)
    r.add_get("/_config/faults", list_faults)
    r.add_get("/_config/faults/served", faults_served)
    r.add_delete("/_config/faults", clear_faults)
    r.add_delete("/_config/faults/{id}", delete_fault)
    r.add_post("/_config/events/resend", resend_events)
    r.add_get("/_config/requests", list_requests)
    r.add_delete("/_config/requests", clear_requests)
    r.add_post("/_config/reset", reset)
    r.add_delete("/_config/data", flush_data)
    r.add_get("/_config/settings", get_settings)
    r.add_post("/_config/settings", update_settings)
    r.add_post("/_config/intents/{id}/authenticate", authenticate_intent)
    r.add_post("/_config/intents/{id}/expire", expire_intent)
    r.add_post("/_config/accounts/{id}/onboard", onboard_account)
    r.add_get("/_3ds/{id}", three_d_secure_page)
    r.add_get("/_connect/onboard/{id}", onboarding_page)
    r.add_get("/healthz", healthz)
    r.add_get("/js.stripe.com/v3/", stripe_js)
    r.add_get("/js.stripe.com/v3", stripe_js)
