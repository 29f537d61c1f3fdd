"""Who may see a ride and everything under it: one rule, used by every read.

A ride's passenger and its assigned driver see all of it (the ride, its live location and
events, its payments); a driver holding an open offer for it sees the offer's fields only
(where to, where from, what it pays, until when); admins see everything; everyone else
sees nothing, and the API answers 404 rather than 403, so an id leaks no existence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from uuid import UUID

from domain.errors import NotFound


class Actor(StrEnum):
    """A user's role: `passenger` (asks for rides), `driver` (takes them), `admin` (runs
    the service)."""

    PASSENGER = "passenger"
    DRIVER = "driver"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated subject of a request (from its token), or the system itself."""

    id: UUID
    role: Actor


#: what a worker acts as when the system changes a ride (expiry, a declined card)
SYSTEM = Caller(UUID(int=0), Actor.ADMIN)


class Access(IntEnum):
    """Ordered: each level sees what the ones below it see."""

    NONE = 0
    OFFER = 1  # a driver with an open offer: the offer's fields
    PARTICIPANT = 2  # the passenger or the assigned driver
    ADMIN = 3


def ride_access(
    caller: Caller,
    passenger_id: UUID | str,
    driver_id: UUID | str | None,
    *,
    holds_open_offer: bool = False,
) -> Access:
    """The caller's access to a ride with these participants. Ids may be UUIDs or their
    text (the hot path reads them from Redis); `holds_open_offer` matters only to drivers
    who are not (yet) the ride's driver."""
    if caller.role is Actor.ADMIN:
        return Access.ADMIN
    me = str(caller.id)
    if caller.role is Actor.PASSENGER:
        return Access.PARTICIPANT if str(passenger_id) == me else Access.NONE
    if driver_id is not None and str(driver_id) == me:
        return Access.PARTICIPANT
    return Access.OFFER if holds_open_offer else Access.NONE


def require(access: Access, at_least: Access, what: str = "ride") -> Access:
    """`access` if it reaches `at_least`, else the 404 that hides the object."""
    if access < at_least:
        raise NotFound(f"{what} not found", code=f"{what.replace(' ', '_')}_not_found")
    return access
