"""Every operation of the HTTP API by name: its operationId (a short verb in its resource's
namespace, what generated clients call their functions) and its one-line summary. One
table, so the API reads as a list; `apply()` names every operation of the served document
from it, and a route without an entry (or an entry without a route) is an error the tests
meet first."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

V1 = "/api/v1"

TAGS = [
    {"name": "auth", "description": "Accounts and the tokens that prove who calls."},
    {"name": "users", "description": "What one user may read of another, and of themselves."},
    {"name": "rides", "description": "A ride from request to its end: the state machine."},
    {
        "name": "dispatch",
        "description": "Offers to drivers: accepted, declined or let expire, wave by wave.",
    },
    {
        "name": "live location",
        "description": "Drivers' fixes in (single, batched, OsmAnd) and nearby search out.",
    },
    {
        "name": "following a ride",
        "description": "Live events over Server-Sent Events, or polling with ETag.",
    },
    {
        "name": "payments",
        "description": "Cards (saved through Stripe), a ride's payments, refunds, cash, "
        "earnings and payouts.",
    },
    {"name": "ratings", "description": "Ratings both ways, summaries, low-rating alerts."},
    {"name": "notifications", "description": "Push devices, the notification log, promotions."},
    {"name": "operations", "description": "Health, readiness and the ops page's figures."},
]

# (method, path): (operationId, summary)
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    # accounts
    ("POST", f"{V1}/auth/register"): ("register_user", "Create an account"),
    ("POST", f"{V1}/auth/token"): ("create_token", "Sign in: an access and a refresh token"),
    ("POST", f"{V1}/auth/refresh"): ("refresh_token", "Trade a refresh token for new tokens"),
    ("GET", f"{V1}/users/me"): ("get_me", "Who the token belongs to"),
    # rides
    ("POST", f"{V1}/rides/estimate"): ("estimate_ride", "Price and time of a ride, before asking"),
    ("POST", f"{V1}/rides"): ("request_ride", "Request a ride"),
    ("GET", f"{V1}/rides"): ("list_rides", "My rides, newest first"),
    ("GET", f"{V1}/rides/{{ride_id}}"): ("get_ride", "One ride, as the caller may see it"),
    ("POST", f"{V1}/rides/{{ride_id}}/accept"): ("accept_offer", "Accept the ride offered"),
    ("POST", f"{V1}/rides/{{ride_id}}/decline"): ("decline_offer", "Decline the ride offered"),
    ("POST", f"{V1}/rides/{{ride_id}}/arrive"): ("mark_arrived", "The driver is at the pickup"),
    ("POST", f"{V1}/rides/{{ride_id}}/start"): ("start_trip", "The passenger is on board"),
    ("POST", f"{V1}/rides/{{ride_id}}/complete"): (
        "complete_ride",
        "The trip is over; the final fare is fixed",
    ),
    ("POST", f"{V1}/rides/{{ride_id}}/no-show"): (
        "report_no_show",
        "The passenger did not come; the no-show fee applies",
    ),
    ("POST", f"{V1}/rides/{{ride_id}}/cancel"): ("cancel_ride", "Cancel a ride"),
    # live location
    ("POST", f"{V1}/drivers/me/location"): ("report_location", "Report one location fix"),
    ("POST", f"{V1}/drivers/me/locations"): (
        "report_locations",
        "Report a batch of location fixes",
    ),
    ("POST", f"{V1}/drivers/me/status"): ("set_driver_status", "Go online or offline"),
    ("POST", f"{V1}/drivers/me/device-key"): (
        "create_device_key",
        "A key for a tracking app that cannot hold a token",
    ),
    ("GET", f"{V1}/osmand"): ("report_osmand_location", "Report a fix, OsmAnd protocol (query)"),
    ("POST", f"{V1}/osmand"): (
        "post_osmand_location",
        "Report a fix, OsmAnd protocol (form or JSON)",
    ),
    ("GET", f"{V1}/drivers/nearby"): ("list_nearby_drivers", "Drivers near a point"),
    # following a ride
    ("POST", f"{V1}/rides/{{ride_id}}/stream-token"): (
        "create_ride_stream_token",
        "A short-lived token to follow a ride",
    ),
    ("GET", f"{V1}/rides/{{ride_id}}/driver-location"): (
        "get_driver_location",
        "Where the ride's driver is (polling, with ETag)",
    ),
    ("GET", f"{V1}/rides/{{ride_id}}/events"): ("stream_ride_events", "Follow a ride (SSE)"),
    ("POST", f"{V1}/drivers/me/stream-token"): (
        "create_driver_stream_token",
        "A short-lived token for the driver's own stream",
    ),
    ("GET", f"{V1}/drivers/me/events"): (
        "stream_driver_events",
        "Offers and ride events for the driver (SSE)",
    ),
    ("GET", f"{V1}/drivers/me/offers"): ("list_my_offers", "The offers open to me now"),
    ("POST", f"{V1}/admin/stream-token"): (
        "create_admin_stream_token",
        "A short-lived token for the admin stream",
    ),
    ("GET", f"{V1}/admin/events"): ("stream_admin_events", "Every ride and driver, live (SSE)"),
    ("GET", f"{V1}/admin/drivers/{{driver_id}}/dispatch-stats"): (
        "get_dispatch_stats",
        "How a driver answers offers",
    ),
    # money
    ("POST", f"{V1}/rides/{{ride_id}}/cash-collected"): (
        "record_cash_collected",
        "The driver took the fare in cash",
    ),
    ("GET", f"{V1}/drivers/me/earnings"): ("get_earnings", "My balances and the lines behind them"),
    ("GET", f"{V1}/drivers/me/settlements"): ("list_settlements", "My daily statements"),
    ("POST", f"{V1}/drivers/me/payout-account"): (
        "create_payout_account_link",
        "Where to set up the account I am paid to",
    ),
    ("POST", f"{V1}/payments/setup-intent"): ("create_setup_intent", "Start saving a card"),
    ("GET", f"{V1}/payments/methods"): ("list_payment_methods", "My saved cards"),
    ("DELETE", f"{V1}/payments/methods/{{pm_id}}"): ("detach_payment_method", "Remove a card"),
    ("POST", f"{V1}/payments/methods/{{pm_id}}/default"): (
        "set_default_payment_method",
        "Pay with this card by default",
    ),
    ("GET", f"{V1}/payments"): ("list_payments", "A ride's payments"),
    ("POST", f"{V1}/payments/{{payment_id}}/refunds"): ("create_refund", "Refund a payment"),
    ("POST", f"{V1}/payments/intent"): (
        "create_ride_intent",
        "The card payment of a ride, for the app to confirm",
    ),
    ("POST", f"{V1}/payments/{{payment_id}}/confirm"): (
        "confirm_payment",
        "Tell the server the app confirmed a payment",
    ),
    ("POST", f"{V1}/webhooks/stripe"): ("receive_stripe_webhook", "Stripe's events (Stripe only)"),
    # ratings
    ("POST", f"{V1}/ratings"): ("rate_ride", "Rate the other side of a ride"),
    ("GET", f"{V1}/ratings/tags"): ("list_rating_tags", "The tags a rating may carry"),
    ("GET", f"{V1}/ratings/user/{{user_id}}"): (
        "list_ratings_received",
        "Ratings a user received",
    ),
    ("GET", f"{V1}/users/{{user_id}}/rating"): ("get_rating_summary", "A user's rating"),
    ("GET", f"{V1}/admin/ratings/alerts"): ("list_rating_alerts", "Drivers rated under the line"),
    # notifications
    ("POST", f"{V1}/devices"): ("register_device", "Register this device for pushes"),
    ("DELETE", f"{V1}/devices/{{token}}"): ("unregister_device", "Stop pushes to a device"),
    ("GET", f"{V1}/notifications"): ("list_notifications", "What was sent to me"),
    ("GET", f"{V1}/notifications/preferences"): (
        "get_notification_preferences",
        "Whether I want promotions",
    ),
    ("PUT", f"{V1}/notifications/preferences"): (
        "set_notification_preferences",
        "Opt in or out of promotions",
    ),
    ("POST", f"{V1}/admin/notifications/broadcast"): (
        "create_broadcast",
        "Send a promotion to everyone who opted in",
    ),
    ("GET", f"{V1}/admin/notifications/broadcast/{{broadcast_id}}"): (
        "get_broadcast",
        "How far a broadcast got",
    ),
    # operations
    ("GET", f"{V1}/admin/overview"): ("get_overview", "The ops page's figures"),
    ("GET", "/healthz"): ("check_health", "Is the process up"),
    ("GET", "/readyz"): ("check_readiness", "Can the process serve (database, Redis, broker)"),
}


# How each operation is entered, where it is not the bearer access token FastAPI declares
PUBLIC = {"register_user", "create_token", "refresh_token", "check_health", "check_readiness"}
BEARER = "OAuth2PasswordBearer"
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    **{op: [] for op in PUBLIC},
    # EventSource cannot send headers: a short-lived stream token in the query instead
    "stream_ride_events": [{BEARER: []}, {"streamToken": []}],
    "stream_driver_events": [{BEARER: []}, {"streamToken": []}],
    "stream_admin_events": [{BEARER: []}, {"streamToken": []}],
    # tracking apps that cannot send headers: the device key in `id`
    "report_osmand_location": [{"deviceKey": []}],
    "post_osmand_location": [{"deviceKey": []}],
    "report_location": [{BEARER: []}],
    "report_locations": [{BEARER: []}],
    "receive_stripe_webhook": [{"stripeSignature": []}],
}
SCHEMES = {
    "streamToken": {
        "type": "apiKey",
        "in": "query",
        "name": "access_token",
        "description": "A stream token (60 s) from the stream's `stream-token` operation, "
        "for clients that cannot send headers (a browser's EventSource).",
    },
    "deviceKey": {
        "type": "apiKey",
        "in": "query",
        "name": "id",
        "description": "The driver's device key (`create_device_key`), as OsmAnd and "
        "Traccar Client send it.",
    },
    "stripeSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "Stripe-Signature",
        "description": "Stripe's signature of the event with the endpoint's secret.",
    },
}
# who may call, where the handler decides it (a ride's stream: whoever may see the ride)
ROLES_IN_HANDLER = {
    "stream_ride_events": ["passenger", "driver", "admin"],
    "stream_driver_events": ["driver"],
    "stream_admin_events": ["admin"],
    "report_osmand_location": ["driver"],
    "post_osmand_location": ["driver"],
}
ANY_ROLE = ["passenger", "driver", "admin"]
_UNAUTHENTICATED = {
    "description": "No valid credentials: sign in (or get a new token) and try again.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
}


def _roles(dependant: Any) -> list[str] | None:
    """The roles the route's dependencies require: None if it needs no sign-in."""
    found: list[str] | None = None
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "roles", None)
        if roles is not None:
            return [str(r) for r in roles]
        if getattr(dep.call, "__name__", "") == "get_caller":
            found = ANY_ROLE
        below = _roles(dep)
        if below is not None and (found is None or len(below) < len(found)):
            found = below
    return found


def apply(app: FastAPI) -> None:
    """Give every operation of the served document its operationId, summary, security and
    the roles that may call it (wrapping the document's builder, so every route, however
    it is mounted, is named)."""
    from fastapi import routing
    from fastapi.openapi.utils import _get_api_route_for_openapi

    from api import document

    build = app.openapi
    finished: list[dict[str, Any]] = []

    def named() -> dict[str, Any]:
        if finished:
            return finished[0]
        doc = build()
        roles: dict[tuple[str, str], list[str] | None] = {}
        for context in routing.iter_route_contexts(app.routes):
            route = _get_api_route_for_openapi(context)
            if route is not None:
                for method in route.methods or ():
                    roles[(method, route.path_format)] = _roles(route.dependant)
        name_operations(doc, roles)
        document.finish(doc)
        finished.append(doc)
        return doc

    app.openapi = named  # type: ignore[method-assign]


def name_operations(
    doc: dict[str, Any], roles: dict[tuple[str, str], list[str] | None] | None = None
) -> None:
    """Set each operation's operationId, summary, security and roles; a route without an
    entry, or an entry without a route, is an error (the tests build the document)."""
    documented = set()
    schemes = doc.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.update(SCHEMES)
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            key = (method.upper(), path)
            if key not in OPERATIONS:
                raise RuntimeError(f"{key[0]} {path} has no entry in api.operations")
            documented.add(key)
            op["operationId"], op["summary"] = OPERATIONS[key]
            if op["operationId"] in SECURITY:
                op["security"] = SECURITY[op["operationId"]]
                if op["security"] and op["operationId"] != "receive_stripe_webhook":
                    # a missing or invalid token or key (Stripe's signature is a 400)
                    op["responses"].setdefault("401", _UNAUTHENTICATED)
            elif "security" in op:  # one entry per scheme (two dependencies may name it)
                unique = {tuple(sorted(r)): r for r in op["security"]}
                op["security"] = list(unique.values())
            who = ROLES_IN_HANDLER.get(op["operationId"]) or (roles or {}).get(key)
            if who is None or op["operationId"] in PUBLIC:
                op["x-roles"] = []
            else:
                op["x-roles"] = who
                line = f"Who may call: {', '.join(who)}."
                if line not in op.get("description", ""):
                    op["description"] = f"{op.get('description', '').rstrip()}\n\n{line}"
    unused = set(OPERATIONS) - documented
    if unused:
        raise RuntimeError(f"api.operations names routes that do not exist: {sorted(unused)}")
