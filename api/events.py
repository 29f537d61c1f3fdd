"""What the streams carry: one model per event, and which stream carries which.

One source for both documents: the OpenAPI stream operations point at these schemas in
its components, and the AsyncAPI document (`api/asyncapi.py`) names them as its
messages' payloads. The events themselves are written elsewhere (the ping script, the
ride-change script, the dispatch worker, the ETA step); the tests read real events off
each stream and check them against these models.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from api.schemas import LatLng, MoneyOut
from domain.rides import RideStatus


class Position(BaseModel):
    """A driver's last accepted fix."""

    driver_id: uuid.UUID = Field(description="The driver.")
    lat: float = Field(description="Latitude, WGS 84 degrees.", examples=[52.5208])
    lng: float = Field(description="Longitude, WGS 84 degrees.", examples=[13.4094])
    heading: float | None = Field(description="Degrees clockwise from north, if known.")
    speed: float | None = Field(description="Metres per second, if known.")
    accuracy: float | None = Field(description="Horizontal accuracy in metres, if known.")
    recorded_at: datetime | None = Field(description="When the device took the fix.")


class LocationEvent(Position):
    """`location`: one per accepted fix of the ride's driver, in time order (on the admin
    stream: every online driver's newest fix)."""

    live: bool = Field(
        description="False for a fix that arrived late (sent from a queue after the device "
        "was offline): part of the path, not where the driver is now."
    )


class StatusEvent(BaseModel):
    """`status`: the ride reached a status. The last event of a ride's stream is its
    terminal status (`completed`, `cancelled`, `no_show`, `expired`)."""

    ride_id: uuid.UUID = Field(description="The ride.")
    status: RideStatus = Field(description="Its status now.")
    at: datetime = Field(description="When it changed.")


class EtaTarget(StrEnum):
    """Where an ETA leads: the pickup while the driver approaches, the dropoff on the
    trip."""

    PICKUP = "pickup"
    DROPOFF = "dropoff"


class EtaEvent(BaseModel):
    """`eta`: the driver's estimated time to the target, at most every few seconds."""

    ride_id: uuid.UUID = Field(description="The ride.")
    seconds: int = Field(description="Estimated seconds to the target.")
    distance_m: int = Field(description="Estimated road metres to the target.")
    target: EtaTarget = Field(description="Where to.")
    at: datetime = Field(description="When it was estimated.")


class OfferEvent(BaseModel):
    """`offer`: a ride offered to the driver, to accept or decline before `expires_at`.
    The same shape is what `list_my_offers` returns."""

    ride_id: uuid.UUID = Field(description="The ride offered.")
    offer_id: uuid.UUID = Field(description="The offer.")
    pickup: LatLng = Field(description="Where the passenger waits.")
    dropoff: LatLng = Field(description="Where they go.")
    estimate: MoneyOut = Field(description="The estimated fare.")
    distance_m: int = Field(description="The driver's straight-line distance to the pickup.")
    expires_at: datetime = Field(description="After this the offer goes to another driver.")


class WithdrawnReason(StrEnum):
    """Why an offer was taken back: `withdrawn` (another driver took the ride),
    `cancelled` (the passenger cancelled), `expired` (it was not answered in time)."""

    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class OfferWithdrawnEvent(BaseModel):
    """`offer_withdrawn`: the offer is gone; accepting it now is a 409."""

    ride_id: uuid.UUID = Field(description="The ride that was offered.")
    reason: WithdrawnReason = Field(description="Why.")


class RideStatusEvent(BaseModel):
    """`ride_status`: one of the driver's rides reached a status."""

    ride_id: uuid.UUID = Field(description="The ride.")
    status: RideStatus = Field(description="Its status now.")
    at: datetime = Field(description="When it changed.")


@dataclass(frozen=True, slots=True)
class Stream:
    """One Server-Sent Events stream: its operation, its address and what it carries."""

    operation_id: str
    path: str
    title: str
    description: str
    events: dict[str, type[BaseModel]]
    token_from: str
    frame: str

    def frame_ref(self) -> dict[str, str]:
        return {"$ref": f"#/components/schemas/{self.frame}"}


STREAMS = (
    Stream(
        "stream_ride_events",
        "/api/v1/rides/{ride_id}/events",
        "A ride's events",
        "For the ride's passenger, its driver and admins: the driver's positions while "
        "assigned, each status, ETAs. A fresh connection replays the ride's history; the "
        "stream ends after the terminal status.",
        {"location": LocationEvent, "status": StatusEvent, "eta": EtaEvent},
        "create_ride_stream_token",
        "RideStreamFrame",
    ),
    Stream(
        "stream_driver_events",
        "/api/v1/drivers/me/events",
        "The driver app's channel",
        "Offers with their deadline, offers withdrawn, and the status of the driver's "
        "rides. A fresh connection first replays the last offer-lifetime of events, so an "
        "open offer is never missed. It never ends by itself.",
        {
            "offer": OfferEvent,
            "offer_withdrawn": OfferWithdrawnEvent,
            "ride_status": RideStatusEvent,
        },
        "create_driver_stream_token",
        "DriverStreamFrame",
    ),
    Stream(
        "stream_admin_events",
        "/api/v1/admin/events",
        "Operations",
        "Every ride's status and every online driver's newest position, for the ops page. "
        "Live from now: a fresh connection replays nothing. It never ends by itself.",
        {"location": LocationEvent, "status": StatusEvent},
        "create_admin_stream_token",
        "AdminStreamFrame",
    ),
)

#: every event model, by its schema name
EVENT_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model for stream in STREAMS for model in stream.events.values()
}


def _frame_name(model: type[BaseModel]) -> str:
    return model.__name__.removesuffix("Event") + "Frame"


def frame_schemas() -> dict[str, Any]:
    """One schema per event as a frame (`id`, `event`, `data`), and per stream the union of
    its frames told apart by `event`: what one read of the stream yields, for clients that
    type their parser (OpenAPI 3.1 has no schema for a stream's items; 3.2's `itemSchema`
    is this)."""
    out: dict[str, Any] = {}
    for stream in STREAMS:
        for event, model in stream.events.items():
            out[_frame_name(model)] = {
                "type": "object",
                "title": _frame_name(model),
                "description": f"A `{event}` event as the stream frames it.",
                "properties": {
                    "id": {
                        "type": "string",
                        "pattern": r"^\d+-\d+$",
                        "description": "The event's id: send it as `Last-Event-ID` to resume.",
                    },
                    "event": {"type": "string", "const": event, "description": "Its name."},
                    "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                },
                "required": ["id", "event", "data"],
            }
        out[stream.frame] = {
            "title": stream.frame,
            "description": f"What one event of `{stream.operation_id}` is.",
            "oneOf": [
                {"$ref": f"#/components/schemas/{_frame_name(m)}"} for m in stream.events.values()
            ],
            "discriminator": {
                "propertyName": "event",
                "mapping": {
                    event: f"#/components/schemas/{_frame_name(m)}"
                    for event, m in stream.events.items()
                },
            },
        }
    return out


#: the server's reconnection hint, sent first on every stream (`retry:` in ms)
RETRY_MS = 2000
