"""Following a ride live: polling with ETag, and Server-Sent Events (no WebSockets)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import (
    CurrentAdmin,
    CurrentCaller,
    CurrentDriver,
    SettingsDep,
    oauth2_scheme,
    stream_caller,
)
from api.errors import ApiError, error_responses
from api.events import RETRY_MS, STREAMS, OfferEvent, Position
from api.live import followed_ride, hub, live
from api.routers.location import position_out
from api.schemas import Page
from domain.access import Actor, Caller
from domain.rides import TERMINAL
from infra.events import Event, id_key, read_after
from infra.live.keys import ADMIN_STREAM, driver_stream, ride_stream
from infra.metrics import SSE_CLIENTS, SSE_CONNECTIONS
from infra.outages import OUTAGES
from infra.security import issue_token
from infra.settings import Settings

log = logging.getLogger("ridehail.streams")

router = APIRouter(
    prefix="/api/v1", tags=["following a ride"], responses=error_responses(400, 401, 403, 404)
)


def _sse_doc(operation_id: str, extra: str) -> dict[str, Any]:
    """The stream's 200 answer, from `api.events.STREAMS`: a `text/event-stream` whose
    events point at their payloads' schemas (the AsyncAPI document names the same ones)."""
    stream = next(s for s in STREAMS if s.operation_id == operation_id)
    names = ", ".join(f"`{name}` ({model.__name__})" for name, model in stream.events.items())
    return {
        "responses": {
            200: {
                "description": f"A `text/event-stream`: {names}. Every event has an `id:` "
                "(the Redis stream id) and `data:` one JSON object; reconnect with "
                "`Last-Event-ID` to receive, in order, what you missed. The first line is "
                f"`retry: {RETRY_MS}` (reconnect after {RETRY_MS // 1000} s); comment lines "
                "(`: keep-alive`) arrive every 15 s. " + extra + " The whole protocol, as "
                "AsyncAPI 3: `/asyncapi.json`.",
                "headers": {
                    "Cache-Control": {
                        "description": "`no-cache`: the stream is never stored.",
                        "schema": {"type": "string"},
                    },
                    "X-Accel-Buffering": {
                        "description": "`no`: a proxy in front must pass events on at once.",
                        "schema": {"type": "string"},
                    },
                },
                "content": {
                    "text/event-stream": {
                        "schema": {
                            "type": "string",
                            "description": "Frames `id:`, `event:`, `data:`; one frame's shape "
                            "is `contentSchema`, the data's schema by event name is in "
                            "`x-sse-events`.",
                            "contentMediaType": "text/event-stream",
                            "contentSchema": stream.frame_ref(),
                            "x-sse-events": {
                                name: {"$ref": f"#/components/schemas/{model.__name__}"}
                                for name, model in stream.events.items()
                            },
                        }
                    }
                },
            }
        }
    }


_SSE_DOC = _sse_doc(
    "stream_ride_events",
    "The stream ends after the ride's terminal status. Auth: the `Authorization` header, or "
    "`?access_token=` with a stream token from `create_ride_stream_token`.",
)
_ADMIN_SSE_DOC = _sse_doc(
    "stream_admin_events",
    "Live from now: a fresh connection replays nothing. It never ends by itself. Auth: an "
    "admin's `Authorization` header, or `?access_token=` with a token from "
    "`create_admin_stream_token`.",
)


class StreamToken(BaseModel):
    """A short-lived token for `?access_token=` on one stream."""

    token: str = Field(description="Pass as `access_token` in the stream's query.")
    expires_in: int = Field(description="Seconds it stays valid; get a new one before.")


@router.post("/rides/{ride_id}/stream-token", response_model=StreamToken)
async def stream_token(
    ride_id: uuid.UUID, request: Request, caller: CurrentCaller, settings: SettingsDep
) -> StreamToken:
    """A short-lived token for `?access_token=` on this ride's event stream only."""
    rid = str(ride_id)
    await followed_ride(request, caller, rid)
    ttl = settings.stream_token_ttl_s
    token = issue_token(caller.id, caller.role, "stream", ttl, scope=f"ride:{rid}")
    return StreamToken(token=token, expires_in=ttl)


@router.post("/admin/stream-token", response_model=StreamToken)
async def admin_stream_token(caller: CurrentAdmin, settings: SettingsDep) -> StreamToken:
    """A short-lived token for `?access_token=` on the admin stream only (for a browser's
    `EventSource`, which cannot send headers)."""
    ttl = settings.stream_token_ttl_s
    return StreamToken(
        token=issue_token(caller.id, caller.role, "stream", ttl, scope="admin"), expires_in=ttl
    )


_NO_CACHE = {
    "description": "`no-cache`: a cache must ask again (with the `ETag`) every time.",
    "schema": {"type": "string"},
}
_ETAG = {
    "description": "The position's version: send it back in `If-None-Match` to get a 304 "
    "while the driver has not moved.",
    "schema": {"type": "string"},
}


@router.get(
    "/rides/{ride_id}/driver-location",
    response_model=Position,
    responses={
        200: {"headers": {"ETag": _ETAG, "Cache-Control": _NO_CACHE}},
        304: {
            "description": "The driver has not moved since the `ETag` sent.",
            "headers": {"ETag": _ETAG, "Cache-Control": _NO_CACHE},
        },
    },
)
async def driver_location(
    ride_id: uuid.UUID,
    request: Request,
    caller: CurrentCaller,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The ride driver's last position. Poll with `If-None-Match`: 304 while it has not moved."""
    facts = await followed_ride(request, caller, str(ride_id), fresh=True)
    driver_id = facts.driver_id
    if not facts.driver_active:
        # a driver's whereabouts are the passenger's business only during the ride
        raise ApiError(404, "the ride has no driver on the way", "no_position")
    pos = await live(request).positions.position(driver_id) if driver_id else {}
    if not driver_id or not pos:
        raise ApiError(404, "no driver position for this ride yet", "no_position")
    etag = '"' + hashlib.sha1(f"{driver_id}:{pos['ts']}".encode()).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(
        json.dumps(position_out(driver_id, pos)), media_type="application/json", headers=headers
    )


def _frame(event: Event) -> str:
    return f"id: {event.id}\nevent: {event.event}\ndata: {event.data}\n\n"


def _ends(event: Event) -> bool:
    if event.event != "status":
        return False
    try:
        return json.loads(event.data).get("status") in TERMINAL
    except ValueError:
        return False


async def _sse(
    request: Request,
    stream: str,
    last_event_id: str | None,
    *,
    replay_all: bool,
    already_over: bool,
    keepalive_s: float,
) -> AsyncIterator[str]:
    """Subscribe first, then read the backlog, then follow live, skipping what was sent:
    no gap and no duplicate between the stored and the live part."""
    events_hub = hub(request)
    try:
        sub = await events_hub.subscribe(stream)
    except OUTAGES as exc:  # Redis out of reach: the client comes back in 2 s
        log.warning("stream %s not opened: %s", stream, type(exc).__name__)
        yield f"retry: {RETRY_MS}\n\n"
        return
    kind = stream.partition(":")[0]  # ride, drv, admin
    SSE_CONNECTIONS.labels(kind).inc()
    connected = SSE_CLIENTS.labels(kind)
    connected.inc()
    try:
        yield f"retry: {RETRY_MS}\n\n"
        last = last_event_id
        after = last_event_id if last_event_id else (None if replay_all else "$")
        backlog = [] if after == "$" else await read_after(live(request).client, stream, after)
        for event in backlog:
            yield _frame(event)
            last = event.id
            if _ends(event):
                return
        if already_over:
            return
        while True:
            try:
                live_event = await asyncio.wait_for(sub.queue.get(), keepalive_s)
            except TimeoutError:
                # quiet for a while: what the stream holds past the last event sent comes
                # now (pub/sub delivers at most once: a shard's failover, or a
                # subscription moved to the slot's new owner, can drop a message that the
                # stream kept)
                if last or after is None:
                    for event in await read_after(live(request).client, stream, last):
                        yield _frame(event)
                        last = event.id
                        if _ends(event):
                            return
                yield ": keep-alive\n\n"
                continue
            if live_event is None:  # dropped as a slow consumer: the client resumes
                return
            if last and id_key(live_event.id) <= id_key(last):
                continue
            seen = last if last else ("0-0" if after is None else None)
            if seen is not None and live_event.prev and live_event.prev != seen:
                # the entry before this one was never sent: pub/sub lost it (or it came
                # between the backlog's read and the subscription): from the stream
                for event in await read_after(live(request).client, stream, last):
                    yield _frame(event)
                    last = event.id
                    if _ends(event):
                        return
                continue
            yield _frame(live_event)
            last = live_event.id
            if _ends(live_event):
                return
    except OUTAGES as exc:  # the stream ends cleanly; the client resumes from its last id
        log.warning("stream %s ended: %s", stream, type(exc).__name__)
    finally:
        connected.dec()
        await events_hub.unsubscribe(sub)


def _valid_last_id(value: str | None) -> str | None:
    if not value:
        return None
    try:
        id_key(value)
    except ValueError as exc:
        raise ApiError(
            400, "Last-Event-ID is not an event id of this stream", "bad_request"
        ) from exc
    return value


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class StreamAsk:
    """What every SSE endpoint reads from its request: the token (header, or a stream
    token in `?access_token=`), where to resume (`Last-Event-ID`, or `?last_event_id=`
    for clients that cannot set it), and the settings."""

    request: Request
    settings: Settings
    token: str | None
    resume: str | None

    async def caller(self, scope: str | None, role: Actor | None = None) -> Caller:
        caller = await stream_caller(self.request, self.token, scope)
        if role is not None and caller.role is not role:
            raise ApiError(403, f"this needs the role {role}", "role_forbidden")
        return caller

    def respond(
        self, stream: str, *, resume: str | None, replay_all: bool = True, ended: bool = False
    ) -> StreamingResponse:
        """One SSE response over `stream`: from `resume` (exclusive), else everything
        stored (`replay_all`) or only what comes next."""
        events = _sse(
            self.request,
            stream,
            resume,
            replay_all=replay_all,
            already_over=ended,
            keepalive_s=self.settings.sse_keepalive_s,
        )
        return StreamingResponse(events, media_type="text/event-stream", headers=_SSE_HEADERS)


async def stream_ask(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamAsk:
    resume = _valid_last_id(last_event_id or request.query_params.get("last_event_id"))
    return StreamAsk(request, settings, token, resume)


StreamAskDep = Annotated[StreamAsk, Depends(stream_ask)]


@router.get("/rides/{ride_id}/events", openapi_extra=_SSE_DOC, response_class=StreamingResponse)
async def ride_events(ride_id: uuid.UUID, ask: StreamAskDep) -> StreamingResponse:
    """The ride's events as Server-Sent Events, for its passenger, its driver and admins:
    the driver's positions while assigned, each status, ETAs. A fresh connection replays
    the ride's history; `Last-Event-ID` resumes after the last event received, with
    nothing lost or repeated. Polling alternative: `get_driver_location`."""
    rid = str(ride_id)
    facts = await followed_ride(ask.request, await ask.caller(f"ride:{rid}"), rid)
    return ask.respond(ride_stream(rid), resume=ask.resume, ended=facts.ended)


@router.get("/admin/events", openapi_extra=_ADMIN_SSE_DOC, response_class=StreamingResponse)
async def admin_events(ask: StreamAskDep) -> StreamingResponse:
    """Every ride status change and driver position, for the ops dashboard (live from now,
    or from `Last-Event-ID`)."""
    await ask.caller("admin", Actor.ADMIN)
    return ask.respond(ADMIN_STREAM, resume=ask.resume, replay_all=False)


# --- the driver app's own channel (dispatch) ---------------------------------------------
@router.post("/drivers/me/stream-token", response_model=StreamToken, tags=["dispatch"])
async def driver_stream_token(caller: CurrentDriver, settings: SettingsDep) -> StreamToken:
    """A short-lived token for `?access_token=` on the driver's own stream only."""
    ttl = settings.stream_token_ttl_s
    token = issue_token(caller.id, caller.role, "stream", ttl, scope=f"driver:{caller.id}")
    return StreamToken(token=token, expires_in=ttl)


_DRIVER_SSE_DOC = _sse_doc(
    "stream_driver_events",
    "A fresh connection first replays the last offer-lifetime of events, so an open offer is "
    "never missed. Auth as the ride stream, with a token from `create_driver_stream_token`.",
)


@router.get(
    "/drivers/me/events",
    openapi_extra=_DRIVER_SSE_DOC,
    response_class=StreamingResponse,
    tags=["dispatch"],
)
async def driver_events(ask: StreamAskDep) -> StreamingResponse:
    """The driver app's channel as Server-Sent Events: offers with their deadline, offers
    withdrawn, and the status of the driver's rides. Polling alternative:
    `list_my_offers`."""
    # scope None: a stream token must be for the driver stream of its own subject
    caller = await ask.caller(None, Actor.DRIVER)
    resume = ask.resume
    if resume is None:  # a fresh connection replays an offer's lifetime: none is missed
        since_ms = int((time.time() - ask.settings.dispatch.offer_ttl_s) * 1000)
        resume = f"{since_ms}-0"
    return ask.respond(driver_stream(str(caller.id)), resume=resume)


class OfferPage(Page[OfferEvent]):
    """The open offers: none or one (a driver holds one offer at most)."""


@router.get("/drivers/me/offers", tags=["dispatch"], response_model=OfferPage)
async def my_offers(request: Request, caller: CurrentDriver) -> dict[str, Any]:
    """Open offers (polling fallback of the driver stream); a driver holds one at most, so
    this list is always one page."""
    offer = await live(request).offers.open_offer(str(caller.id))
    return {"items": [offer] if offer else [], "next_cursor": None}


class DispatchStats(BaseModel):
    """Offers a driver received and what became of them."""

    offered: int = Field(description="Offers the driver received.")
    accepted: int = Field(description="Offers they accepted.")
    declined: int = Field(description="Offers they declined.")
    expired: int = Field(description="Offers they let expire.")


@router.get(
    "/admin/drivers/{driver_id}/dispatch-stats", response_model=DispatchStats, tags=["dispatch"]
)
async def dispatch_stats(
    driver_id: uuid.UUID, request: Request, caller: CurrentAdmin
) -> dict[str, int]:
    """Offers a driver received and what became of them (ops, and ranking ties)."""
    return await live(request).offers.offer_stats(str(driver_id))
