"""The FastAPI application: `uvicorn api.main:app`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from api import asyncapi, errors, operations
from api.live import RideFactsCache
from api.middleware import Edge
from api.routers import (
    auth,
    earnings,
    health,
    location,
    notifications,
    ops,
    payments,
    ratings,
    rides,
    streams,
    webapp,
    webhooks,
)
from infra import logs
from infra.events import EventHub
from infra.live import LiveAsync
from infra.outages import OUTAGES
from infra.redis import initialize, make_async_redis
from infra.settings import get_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = make_async_redis()
    app.state.live = LiveAsync(
        app.state.redis, wait=(get_settings().redis_wait_replicas, get_settings().redis_wait_ms)
    )
    app.state.ride_facts = RideFactsCache()
    # pub/sub needs its own connection, without the pool's health checks in the way
    app.state.hub = EventHub(make_async_redis())
    for client in (app.state.redis, app.state.hub.client):
        try:
            await initialize(client)  # a cluster's slots, learnt while its nodes answer
        except OUTAGES:
            log.warning("live state's Redis Cluster not reachable at start; readiness says so")
    await app.state.hub.start()
    # Measured (bench/README.md): with the default thresholds a full collection walks every
    # long-lived object each ~0.35 s under load, for 35-50 ms, freeing nothing: the p99.
    # Freeze what start-up made, and collect the young generations less eagerly.
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 10, 10)
    try:
        yield
    finally:
        await app.state.hub.stop()
        await app.state.redis.aclose()


def create_app() -> FastAPI:
    settings = get_settings()
    logs.configure(settings.log_format)
    app = FastAPI(
        title="ridehail",
        version="1.0",
        description="Real-time and payments backend of a ride-hailing service: rides from "
        "request to rating, live location over HTTP (Server-Sent Events or polling, no "
        "WebSockets), card and cash payments. The streams' events are described here and, "
        "as a protocol, in the AsyncAPI document at `/asyncapi.json`.",
        servers=[{"url": settings.public_url, "description": "this deployment"}],
        contact={"name": "ridehail backend team", "url": f"{settings.public_url}/docs"},
        license_info={"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        openapi_tags=operations.TAGS,
        lifespan=lifespan,
    )
    errors.install(app)
    errors.document_errors(app)
    # the hot path first: routes are matched in order
    app.router.routes.insert(0, location.fast_ping_route())
    app.include_router(location.router)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(rides.router)
    app.include_router(streams.router)
    app.include_router(earnings.router)
    app.include_router(payments.router)
    app.include_router(webhooks.router)
    app.include_router(ratings.router)
    app.include_router(notifications.router)
    app.include_router(ops.router)
    app.include_router(webapp.router)
    operations.apply(app)
    streams_doc = asyncapi.build(settings.public_url)

    @app.get("/asyncapi.json", include_in_schema=False)
    def asyncapi_json() -> JSONResponse:
        """The streams' AsyncAPI 3 document (the HTTP half: `/openapi.json`)."""
        return JSONResponse(streams_doc)

    app.add_middleware(Edge, max_bytes=settings.max_body_bytes)
    return app


app = create_app()
