"""Request and response shapes of the HTTP API (docs/api.md): `...In` bodies, `...Public` /
`...Out` answers, apart from the SQL tables in `infra/models.py`."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from api.error_codes import ErrorCode
from domain.access import Access, Actor
from domain.pings import MAX_GEO_LAT
from domain.rides import RidePayment, RideState, RideStatus
from domain.usecases.rides import RideView

T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserPublic(BaseModel):
    """A user as they see themselves."""

    id: uuid.UUID = Field(description="The user's id.")
    email: str = Field(description="Their sign-in email.")
    name: str = Field(description="The name others see.")
    role: Actor = Field(description="What they may do.")
    created_at: datetime = Field(description="When the account was made.")


class RegisterIn(Strict):
    """A new account."""

    email: EmailStr = Field(description="The email to sign in with (one account per email).")
    password: str = Field(description="8 to 128 characters.", min_length=8, max_length=128)
    name: str = Field(
        description="The name others see (the driver's, on a ride).", min_length=1, max_length=200
    )
    role: Actor = Field(
        description="`passenger` or `driver`; `admin` is refused (403 `role_not_allowed`): "
        "admins are made on the command line"
    )

    @field_validator("name")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("name must not be blank")
        return v


class TokenPair(BaseModel):
    """An access token and the refresh token that renews it."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    access_token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    token_type: Literal["bearer"] = Field(default="bearer", description="Always `bearer`.")
    expires_in: int = Field(description="Seconds the access token stays valid.")
    refresh_token: str = Field(
        description="Trade it once for a new pair (`refresh_token`); it is then spent."
    )


class RefreshIn(Strict):
    """A refresh token to trade."""

    refresh_token: str = Field(
        description="The refresh token of the last pair (it works once).",
        min_length=1,
        max_length=4096,
    )


class LatLng(Strict):
    """A point, WGS 84 degrees. The latitude stops at the map's limit (±85.05°), beyond
    which no position can be indexed."""

    # numbers only (strict): JSON `false` or "1" is not a coordinate here
    lat: float = Field(ge=-MAX_GEO_LAT, le=MAX_GEO_LAT, strict=True, description="Latitude.")
    lng: float = Field(ge=-180, le=180, strict=True, description="Longitude.")

    @field_validator("lat", "lng")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return float(v)


class MoneyOut(BaseModel):
    """An amount of money."""

    amount: int = Field(description="Minor units (cents).")
    currency: str = Field(description="ISO 4217, lower case.")


class EstimateIn(Strict):
    """A trip to price."""

    pickup: LatLng = Field(description="Where the passenger is picked up.")
    dropoff: LatLng = Field(description="Where the trip ends.")


class EstimateOut(BaseModel):
    """A trip priced before it is asked for."""

    amount: int = Field(description="The estimated fare, minor units.")
    currency: str = Field(description="ISO 4217, lower case.")
    distance_m: int = Field(description="Estimated road metres.")
    duration_s: int = Field(description="Estimated seconds.")


class RideIn(Strict):
    """A ride to request."""

    pickup: LatLng = Field(description="Where the passenger waits.")
    dropoff: LatLng = Field(description="Where the trip ends.")
    payment: RidePayment = Field(
        description="`cash`, or `card` (a saved card: the default, or `payment_method_id`)."
    )
    payment_method_id: str | None = Field(
        description="A saved card to pay with (`pm_...`); the default card if left out.",
        default=None,
        max_length=255,
    )


class CancelIn(Strict):
    """Why the ride is cancelled (optional)."""

    reason: str | None = Field(
        description="Why, in a few words (shown to the other side and ops).",
        default=None,
        max_length=500,
    )


class RidePublic(BaseModel):
    """A ride as its passenger, its driver and admins see it."""

    # `view` is always sent: the document must say it is there (it tells the two apart)
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    view: Literal["ride"] = Field(
        default="ride",
        description="Which shape this is: `ride` (all of it), or `offer` (what a driver "
        "holding an offer sees).",
    )
    id: uuid.UUID = Field(description="The ride's id.")
    status: RideStatus = Field(description="Where the ride is.")
    passenger_id: uuid.UUID = Field(description="Who asked for it.")
    driver_id: uuid.UUID | None = Field(description="Who drives it, once a driver accepted.")
    pickup: LatLng = Field(description="Where the passenger is picked up.")
    dropoff: LatLng = Field(description="Where the trip ends.")
    payment: RidePayment = Field(description="How it is paid: `cash` or `card`.")
    estimate: MoneyOut = Field(description="The fare estimated at the request.")
    fare: MoneyOut | None = Field(
        description="The fare, fixed at completion from the travelled path."
    )
    fee: MoneyOut | None = Field(
        default=None, description="cancellation or no-show fee, when one is due"
    )
    distance_m: int | None = Field(
        description="The estimate's road metres until completion, then what was travelled."
    )
    duration_s: int | None = Field(
        description="The estimate's seconds until completion, then how long it took."
    )
    created_at: datetime = Field(description="When it was requested.")
    updated_at: datetime = Field(description="When it last changed.")
    accepted_at: datetime | None = Field(default=None, description="a driver took the ride")
    arrived_at: datetime | None = Field(default=None, description="the driver was at the pickup")
    started_at: datetime | None = Field(default=None, description="the passenger got in")
    completed_at: datetime | None = Field(default=None, description="the trip ended")
    cancelled_at: datetime | None = Field(
        default=None, description="cancelled, or marked a no-show"
    )
    cancelled_by: str | None = Field(
        default=None, description="passenger, driver or admin (admin also: the system)"
    )
    cancel_reason: str | None = Field(
        default=None, description="Why it was cancelled, if it was and a reason was given."
    )
    route_polyline: str | None = Field(
        default=None, description="the travelled path, Google encoded polyline (after completion)"
    )


class Page(BaseModel, Generic[T]):
    """One page of a list. Each list names its own page (`RidePage`, `CardPage`...), all of
    this one shape."""

    items: list[T] = Field(description="This page's items, in the order the operation states.")
    next_cursor: str | None = Field(
        description="The `cursor` of the next page; null on the last page."
    )


class RidePage(Page[RidePublic]):
    """Rides, newest first."""


class ValidationIssue(BaseModel):
    """One field that failed validation."""

    loc: list[str | int] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field's path."
    )
    msg: str = Field(description="What is wrong, for people.")
    type: str = Field(description="What is wrong, for programs (e.g. `missing`).")


class ErrorOut(BaseModel):
    """Every error answer: a human `detail` (text, or the list of what failed validation)
    and a machine `code`."""

    detail: str | list[ValidationIssue] = Field(
        description="For people: a sentence, or (`validation_error`) each field that failed."
    )
    code: ErrorCode = Field(description="For programs: what went wrong.")


class RideOffered(BaseModel):
    """A ride as a driver holding an open offer for it sees it: the offer's fields."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    view: Literal["offer"] = Field(default="offer", description="Always `offer` here.")
    id: uuid.UUID = Field(description="The ride's id.")
    status: RideStatus = Field(
        description="Where the ride is (`requested` while the offer stands)."
    )
    pickup: LatLng = Field(description="Where the passenger waits.")
    dropoff: LatLng = Field(description="Where the trip ends.")
    payment: RidePayment = Field(description="How it is paid.")
    estimate: MoneyOut = Field(description="The estimated fare.")
    distance_m: int = Field(description="The estimate's road metres.")
    duration_s: int = Field(description="The estimate's seconds.")
    expires_at: datetime | None = Field(description="When the offer lapses.")


def _money(amount: int | None, currency: str) -> MoneyOut | None:
    return None if amount is None else MoneyOut(amount=amount, currency=currency)


#: fields a ride's public shape takes as the row has them
_AS_STORED = (
    "id",
    "passenger_id",
    "driver_id",
    "created_at",
    "updated_at",
    "accepted_at",
    "arrived_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "cancelled_by",
    "cancel_reason",
    "route_polyline",
)


def ride_out(r: RideState) -> RidePublic:
    """The public shape of a ride row. Distance and duration are the estimate's until the
    trip is completed, then what was travelled."""
    return RidePublic(
        **{name: getattr(r, name, None) for name in _AS_STORED},
        status=RideStatus(r.status),
        pickup=LatLng(lat=r.pickup_lat, lng=r.pickup_lng),
        dropoff=LatLng(lat=r.dropoff_lat, lng=r.dropoff_lng),
        payment=RidePayment(r.payment),
        estimate=MoneyOut(amount=r.estimate_amount, currency=r.currency),
        fare=_money(r.fare_amount, r.currency),
        fee=_money(r.fee_amount or None, r.currency),
        distance_m=r.estimate_distance_m if r.distance_m is None else r.distance_m,
        duration_s=r.estimate_duration_s if r.duration_s is None else r.duration_s,
    )


RideSeen = Annotated[RidePublic | RideOffered, Field(discriminator="view")]


def ride_view_out(view: RideView) -> RidePublic | RideOffered:
    if view.access > Access.OFFER:
        return ride_out(view.ride)
    r = view.ride
    return RideOffered(
        id=r.id,
        status=RideStatus(r.status),
        pickup=LatLng(lat=r.pickup_lat, lng=r.pickup_lng),
        dropoff=LatLng(lat=r.dropoff_lat, lng=r.dropoff_lng),
        payment=RidePayment(r.payment),
        estimate=MoneyOut(amount=r.estimate_amount, currency=r.currency),
        distance_m=r.estimate_distance_m,
        duration_s=r.estimate_duration_s,
        expires_at=view.offer_expires_at,
    )
