"""Notification use cases: a user's devices (FCM tokens) and what they were told."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from domain.access import Caller
from domain.errors import NotFound
from domain.usecases.ports import UnitOfWork


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
