"""Devices (FCM tokens) and the notification log over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentAdmin, CurrentCaller, UowDep, ViewsDep
from api.errors import error_responses
from api.pagination import PageDep
from api.schemas import Page
from domain.notifications import NotificationKind, NotificationStatus
from domain.usecases import notifications as use
from domain.usecases.ports import BroadcastProgress, BroadcastStatus

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=error_responses(401, 403))


class Platform(StrEnum):
    """Where the app runs."""

    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


class DeviceIn(BaseModel):
    """A device that receives pushes."""

    token: str = Field(min_length=1, max_length=4096, description="The app's FCM token.")
    platform: Platform = Field(description="Where the app runs.")


class NotificationPublic(BaseModel):
    """A push sent (or to be sent) to the user, as logged."""

    id: uuid.UUID = Field(description="The notification's id.")
    kind: NotificationKind = Field(description="What it is about.")
    title: str = Field(description="The title shown.")
    body: str = Field(description="The text shown.")
    ride_id: uuid.UUID | None = Field(description="The ride it is about, if any.")
    status: NotificationStatus = Field(description="How far its delivery got.")
    created_at: datetime = Field(description="When it was logged.")


class NotificationPage(Page[NotificationPublic]):
    """Notifications, newest first."""


@router.post("/devices", status_code=201, response_model=DeviceIn)
def register_device(body: DeviceIn, caller: CurrentCaller, uow: UowDep) -> DeviceIn:
    """Register this device's FCM token for pushes (a token registered again moves to its
    new owner)."""
    use.register_device(uow, caller, body.token, body.platform)
    return body


@router.delete("/devices/{token}", status_code=204, responses=error_responses(404))
def unregister_device(token: str, caller: CurrentCaller, uow: UowDep) -> None:
    """Stop pushes to this device (yours only: another user's token is a 404)."""
    use.unregister_device(uow, caller, token)


@router.get("/notifications", response_model=NotificationPage, responses=error_responses(400))
def notifications(caller: CurrentCaller, read: ViewsDep, ask: PageDep) -> NotificationPage:
    """What was sent to me, newest first, with its delivery status."""
    rows = read.notifications_of(caller.id, ask.before, ask.fetch)
    items, next_cursor = ask.page(
        rows, lambda r: NotificationPublic.model_validate(r, from_attributes=True)
    )
    return NotificationPage(items=items, next_cursor=next_cursor)


class Preferences(BaseModel):
    """A user's choice of pushes."""

    promotions: bool = Field(description="promotional pushes; ride and payment ones always go")


@router.get("/notifications/preferences", response_model=Preferences)
def preferences(caller: CurrentCaller, read: ViewsDep) -> Preferences:
    """Whether I receive promotional pushes. Ride and payment pushes always go out."""
    return Preferences(promotions=read.wants_promotions(caller.id))


@router.put("/notifications/preferences", response_model=Preferences)
def set_preferences(body: Preferences, caller: CurrentCaller, uow: UowDep) -> Preferences:
    """Opt in to promotional pushes, or out (a broadcast already planned for me may still
    arrive). Ride and payment pushes are not affected."""
    return Preferences(promotions=use.want_promotions(uow, caller, body.promotions))


class BroadcastIn(BaseModel):
    """A promotional push to every user who opted in."""

    title: str = Field(min_length=1, max_length=200, description="The title shown.")
    body: str = Field(min_length=1, max_length=1000, description="The text shown.")


class BroadcastOut(BaseModel):
    """A broadcast and how far it got."""

    id: uuid.UUID = Field(description="The broadcast's id.")
    status: BroadcastStatus = Field(description="Where it is.")
    recipients: int = Field(description="users who opted in, logged so far")
    sent: int = Field(description="of them, reached on at least one device")


def _broadcast_out(progress: BroadcastProgress) -> BroadcastOut:
    return BroadcastOut(
        id=progress.id,
        status=progress.status,
        recipients=progress.recipients,
        sent=progress.sent,
    )


@router.post(
    "/admin/notifications/broadcast",
    status_code=202,
    response_model=BroadcastOut,
    tags=["operations"],
)
def broadcast(body: BroadcastIn, caller: CurrentAdmin, uow: UowDep) -> BroadcastOut:
    """A promotional push to every user who opted in, sent by workers in batches, after
    any waiting ride push."""
    return _broadcast_out(use.broadcast(uow, caller, body.title, body.body))


@router.get(
    "/admin/notifications/broadcast/{broadcast_id}",
    response_model=BroadcastOut,
    responses=error_responses(404),
    tags=["operations"],
)
def broadcast_progress(
    broadcast_id: uuid.UUID, caller: CurrentAdmin, read: ViewsDep
) -> BroadcastOut:
    """How far a broadcast got: `planning` while recipients are still being added, then
    `done`; how many recipients it has so far, and how many pushes were sent."""
    return _broadcast_out(read.broadcast_progress(broadcast_id))
