"""What an admin watching the service asks for."""

from __future__ import annotations

from typing import Any

from domain.access import Actor, Caller
from domain.errors import NotFound
from domain.usecases.ports import UnitOfWork


def overview(uow: UnitOfWork, caller: Caller, since_h: int = 24) -> dict[str, Any]:
    """Rides and payments by status over the last `since_h` hours, the queues, the drivers
    online, the open low-rating alerts, and the rides under way (for the map)."""
    if caller.role is not Actor.ADMIN:
        raise NotFound("not found")
    return uow.ops.overview(since_h, active_limit=500)
