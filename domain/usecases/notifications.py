"""Notification use cases: a user's devices (FCM tokens) and what they were told."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.access import Caller
from domain.errors import NotFound
from domain.jobs import Job
from domain.usecases.ports import BroadcastProgress, UnitOfWork


def register_device(uow: UnitOfWork, caller: Caller, token: str, platform: str) -> None:
    """A token registered again moves to its new owner (a phone changed hands)."""
    uow.devices.register(caller.id, token, platform)


def unregister_device(uow: UnitOfWork, caller: Caller, token: str) -> None:
    if not uow.devices.unregister(caller.id, token):
        raise NotFound("device not found", code="device_not_found")


def my_notifications(
    uow: UnitOfWork, caller: Caller, before: tuple[datetime, UUID] | None, limit: int
) -> list[Any]:
    return uow.devices.log(caller.id, before, limit)


def promotions_wanted(uow: UnitOfWork, caller: Caller) -> bool:
    """Ride and payment pushes always go out; promotions only to those who opted in."""
    return uow.devices.promotions(caller.id)


def want_promotions(uow: UnitOfWork, caller: Caller, wanted: bool) -> bool:
    uow.devices.set_promotions(caller.id, wanted)
    return wanted


def broadcast(uow: UnitOfWork, admin: Caller, title: str, body: str) -> BroadcastProgress:
    """A promotional push to every user who opted in, planned and delivered by workers in
    batches, on the low-priority path."""
    broadcast_id = uow.broadcasts.create(title, body, admin.id)
    uow.jobs.enqueue(Job.BROADCAST, broadcast_id=str(broadcast_id))
    return BroadcastProgress(broadcast_id, planned=False, recipients=0, sent=0, queued=0)


def broadcast_progress(uow: UnitOfWork, broadcast_id: UUID) -> BroadcastProgress:
    return uow.broadcasts.progress(broadcast_id)
