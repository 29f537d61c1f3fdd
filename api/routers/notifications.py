"""Devices (FCM tokens) and the notification log over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import CurrentCaller, UowDep
from api.errors import error_responses
from api.pagination import PageDep
from domain.usecases import notifications as use

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=error_responses(401, 403))


class DeviceIn(BaseModel):
    token: str = Field(min_length=1, max_length=4096, description="the app's FCM token")
    platform: Literal["android", "ios", "web"]


class NotificationPublic(BaseModel):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    ride_id: uuid.UUID | None
    status: str = Field(description="queued | sent | failed")
    created_at: datetime


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None


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
def notifications(caller: CurrentCaller, uow: UowDep, ask: PageDep) -> NotificationPage:
    """What was sent to me, newest first, with its delivery status."""
    rows = use.my_notifications(uow, caller, ask.before, ask.fetch)
    items, next_cursor = ask.page(
        rows, lambda r: NotificationPublic.model_validate(r, from_attributes=True)
    )
    return NotificationPage(items=items, next_cursor=next_cursor)
