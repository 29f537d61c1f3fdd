"""The app: our handlers for what the project calls, localstripe's behind them for the rest."""

from __future__ import annotations

import argparse
import logging
import sys

from aiohttp import web

from devtools.stripe_standin import (  # noqa: F401 - importing registers the routes
    config,
    connect,
    customers,
    events,
    payment_intents,
    payment_methods,
    refunds,
    setup_intents,
)
from devtools.stripe_standin.http import MIDDLEWARES, ROUTES, STATE, handler_for
from devtools.stripe_standin.state import State
from devtools.stripe_standin.webhooks import Endpoint, Settings

log = logging.getLogger("stripe_standin")

# Resource families answered here in full; localstripe's routes under them are not used.
OWNED = (
    "/v1/customers",
    "/v1/payment_methods",
    "/v1/setup_intents",
    "/v1/payment_intents",
    "/v1/charges",
    "/v1/refunds",
    "/v1/accounts",
    "/v1/account",
    "/v1/account_links",
    "/v1/transfers",
    "/v1/events",
    "/v1/webhook_endpoints",
    "/v1/balance_transactions",
    "/_config",
    "/js.stripe.com",  # our Stripe.js (stripe.js), not localstripe's
)


def _owned(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in OWNED)


def _localstripe_routes(app: web.Application) -> None:
    """localstripe's other resources (products, plans, coupons, invoices, subscriptions,
    tokens, sources, balance, its JS), kept in memory only. They do not see the customers
    and payment methods above: the project does not call them."""
    import localstripe.resources as ls_resources
    import localstripe.server as ls_server

    ls_resources.store.dump_to_disk = lambda: None  # no /tmp/localstripe.pickle
    for route in ls_server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or _owned(path) or route.method == "HEAD":
            continue
        app.router.add_route(route.method, path, route.handler)


def _unrecognized(app: web.Application) -> None:
    async def unrecognized(request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    for prefix in OWNED:
        if prefix.startswith("/v1"):
            app.router.add_route("*", prefix + "/{tail:.*}", unrecognized)


def build_app(
    settings: Settings | None = None,
    *,
    webhooks: list[Endpoint] | None = None,
    with_localstripe: bool = True,
) -> web.Application:
    """A fresh stand-in with its own memory (in-process tests can run several)."""
    state = State(settings)
    for endpoint in webhooks or []:
        state.endpoints[endpoint.id] = endpoint
    app = web.Application(middlewares=MIDDLEWARES, client_max_size=1024**2)
    app[STATE] = state
    for route in ROUTES:
        app.router.add_route(route.method, route.path, handler_for(route))
    config.add_routes(app)
    _unrecognized(app)
    if with_localstripe:
        _localstripe_routes(app)

    async def close(_app: web.Application) -> None:
        await state.deliverer.close()

    app.on_cleanup.append(close)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.stripe_standin",
        description="An offline Stripe (API v1 as the project uses it) on host:port.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument(
        "--from-scratch",
        action="store_true",
        help="accepted for localstripe compatibility; the stand-in always starts empty",
    )
    parser.add_argument("--webhook-url", help="deliver every event to this URL")
    parser.add_argument("--webhook-secret", help="signing secret for --webhook-url (whsec_...)")
    parser.add_argument(
        "--webhook-events", default="*", help="comma-separated event types for --webhook-url"
    )
    parser.add_argument(
        "--webhook-backoff",
        type=float,
        default=Settings.webhook_backoff_s,
        help="seconds before the first retry, doubling after (default 1)",
    )
    parser.add_argument(
        "--webhook-attempts",
        type=int,
        default=Settings.webhook_attempts,
        help="delivery attempts per event and endpoint (default 6)",
    )
    parser.add_argument("--webhook-timeout", type=float, default=Settings.webhook_timeout_s)
    parser.add_argument(
        "--funds-available-after",
        type=float,
        default=Settings.funds_available_after_s,
        help="seconds before captured card funds become available for transfers (default 2 days)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        parser.error("--webhook-url needs --webhook-secret")
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    settings = Settings(
        webhook_backoff_s=args.webhook_backoff,
        webhook_attempts=args.webhook_attempts,
        webhook_timeout_s=args.webhook_timeout,
        funds_available_after_s=args.funds_available_after,
    )
    endpoints = []
    if args.webhook_url:
        events = [e for e in args.webhook_events.split(",") if e and e != "*"] or None
        endpoints.append(Endpoint("cli", args.webhook_url, args.webhook_secret, events))
    app = build_app(settings, webhooks=endpoints)
    log.info("Stripe stand-in on http://%s:%d", args.host, args.port)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
