"""Rides over HTTP: each handler parses, calls one use case, and shapes the answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api import idempotency
from api.deps import (
    ContextDep,
    CurrentCaller,
    CurrentDriver,
    CurrentPassenger,
    UowDep,
)
from api.errors import error_responses
from api.pagination import PageDep
from api.schemas import (
    CancelIn,
    EstimateIn,
    EstimateOut,
    RideIn,
    RideOffered,
    RidePage,
    RidePublic,
    RideSeen,
    ride_out,
    ride_view_out,
)
from domain.geo import Point
from domain.rides import RidePayment, RideStatus
from domain.usecases import rides as use

router = APIRouter(prefix="/api/v1/rides", tags=["rides"], responses=error_responses(401, 403))

_CONFLICT = error_responses(404, 409)


@router.post("/estimate", response_model=EstimateOut, responses=error_responses())
def estimate(body: EstimateIn, caller: CurrentPassenger, ctx: ContextDep) -> EstimateOut:
    """The fare, distance and duration the service would quote for this trip now; nothing
    is booked."""
    quote = use.estimate(
        ctx, Point(body.pickup.lat, body.pickup.lng), Point(body.dropoff.lat, body.dropoff.lng)
    )
    return EstimateOut(
        amount=quote.amount,
        currency=quote.currency,
        distance_m=quote.distance_m,
        duration_s=quote.duration_s,
    )


@router.post(
    "", status_code=201, response_model=RidePublic, responses=error_responses(400, 409, 429)
)
def request_ride(
    body: RideIn,
    caller: CurrentPassenger,
    uow: UowDep,
    ctx: ContextDep,
    key: Annotated[str | None, Depends(idempotency.idempotency_key_header)],
) -> Any:
    """Ask for a ride from pickup to dropoff, paid in cash or by card (a card ride is
    authorized in the background). Dispatch starts at once; follow the ride's stream to
    hear of the driver. Send an `Idempotency-Key` so a retry after a lost answer never
    books twice. One open ride per passenger: another is a 409."""
    endpoint = "POST /api/v1/rides"
    replay = idempotency.Replay(uow, caller.id, key, endpoint, body.model_dump(mode="json"))
    if (first := replay.first_answer()) is not None:
        return first
    ride = use.request_ride(
        uow,
        ctx,
        caller,
        use.RideRequest(
            pickup=Point(body.pickup.lat, body.pickup.lng),
            dropoff=Point(body.dropoff.lat, body.dropoff.lng),
            payment=RidePayment(body.payment),
            payment_method_id=body.payment_method_id,
        ),
    )
    out = ride_out(ride).model_dump(mode="json")
    replay.remember(201, out)
    return JSONResponse(out, status_code=201)


@router.get("", response_model=RidePage, responses=error_responses(400))
def my_rides(
    caller: CurrentCaller, uow: UowDep, ask: PageDep, status: RideStatus | None = None
) -> RidePage:
    """My rides, newest first. Admins see every ride."""
    rows = use.list_rides(uow, caller, status=status, before=ask.before, limit=ask.fetch)
    items, next_cursor = ask.page(rows, ride_out)
    return RidePage(items=items, next_cursor=next_cursor)


@router.get("/{ride_id}", response_model=RideSeen, responses=error_responses(404))
def get_ride(
    ride_id: uuid.UUID, caller: CurrentCaller, uow: UowDep, ctx: ContextDep
) -> RidePublic | RideOffered:
    """The ride. A driver holding an open offer for it sees the offer's fields only."""
    return ride_view_out(use.view_ride(uow, ctx, caller, ride_id))


@router.post("/{ride_id}/accept", response_model=RidePublic, responses=_CONFLICT)
def accept(ride_id: uuid.UUID, caller: CurrentDriver, uow: UowDep, ctx: ContextDep) -> RidePublic:
    """Take the ride offered to you. Only the driver holding an open offer may, and only
    one driver wins: a ride already taken, or an offer expired, is a 409."""
    return ride_out(use.accept(uow, ctx, caller, ride_id))


class DeclineOut(BaseModel):
    """What became of the declined offer."""

    ride_id: uuid.UUID = Field(description="The ride whose offer was declined.")
    offer: Literal["declined"] = Field(description="What became of the offer.")


@router.post("/{ride_id}/decline", response_model=DeclineOut, responses=_CONFLICT)
def decline(
    ride_id: uuid.UUID, caller: CurrentDriver, uow: UowDep, ctx: ContextDep
) -> dict[str, str]:
    """Decline an offer: dispatch offers the ride to the next driver at once."""
    use.decline(uow, ctx, caller, ride_id)
    return {"ride_id": str(ride_id), "offer": "declined"}


def _driver_step(step: use.DriverStep) -> Any:
    def endpoint(
        ride_id: uuid.UUID, caller: CurrentDriver, uow: UowDep, ctx: ContextDep
    ) -> RidePublic:
        return ride_out(use.driver_step(uow, ctx, caller, ride_id, step))

    endpoint.__name__ = step.value.replace("-", "_")
    return endpoint


for _step, _description in (
    (
        use.DriverStep.ARRIVE,
        "The assigned driver is at the pickup: the passenger is told. From an accepted ride.",
    ),
    (
        use.DriverStep.START,
        "The passenger is on board and the trip's path is recorded from now. From an arrived ride.",
    ),
    (
        use.DriverStep.COMPLETE,
        "The trip is over: the final fare is fixed from the path travelled (the estimate if "
        "none was recorded), and payment, ledger and notices follow. From a ride in progress.",
    ),
    (
        use.DriverStep.NO_SHOW,
        "The passenger did not come after the wait: the ride ends and the no-show fee "
        "applies. From an arrived ride.",
    ),
):
    router.add_api_route(
        f"/{{ride_id}}/{_step.value}",
        _driver_step(_step),
        methods=["POST"],
        response_model=RidePublic,
        description=_description,
        responses=_CONFLICT,
    )


@router.post("/{ride_id}/cancel", response_model=RidePublic, responses=_CONFLICT)
def cancel(
    ride_id: uuid.UUID,
    caller: CurrentCaller,
    uow: UowDep,
    ctx: ContextDep,
    body: Annotated[CancelIn | None, Body()] = None,
) -> RidePublic:
    """Cancel as the passenger (before the trip starts) or the driver (before pickup). A
    late cancellation by the passenger carries the cancellation fee; the ride's follow-ups
    (refund or fee, notices) come after."""
    return ride_out(use.cancel(uow, ctx, caller, ride_id, body.reason if body else None))
