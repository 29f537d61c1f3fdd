from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse

from api import idempotency
from api.deps import CurrentCaller, CurrentDriver, CurrentPassenger, SessionDep, SettingsDep
from api.pagination import decode_cursor, encode_cursor
from api.schemas import (
    CancelIn,
    EstimateIn,
    EstimateOut,
    RideIn,
    RidePage,
    RidePublic,
    ride_out,
)
from domain import services
from domain.geo import Point, RouteModel
from domain.rides import Actor, PaymentKind, RideStatus
from infra.db import utcnow
from infra.offers import SqlOfferBook
from infra.payments import SqlPaymentBook
from infra.ratelimit import RedisVelocity
from infra.redis import get_sync_redis
from infra.repositories import (
    OutboxJobs,
    RedisLiveState,
    RedisTripPaths,
    SqlRideRepository,
    list_rides,
)
from infra.settings import Settings

router = APIRouter(prefix="/api/v1/rides", tags=["rides"])

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "illegal state transition or duplicate"}
}


def _route(settings: Settings) -> RouteModel:
    return RouteModel(settings.detour_factor, settings.average_speed_kmh)


@router.post("/estimate", response_model=EstimateOut)
def estimate(body: EstimateIn, caller: CurrentPassenger, settings: SettingsDep) -> EstimateOut:
    quote = services.estimate(
        settings.fare_rules,
        _route(settings),
        Point(body.pickup.lat, body.pickup.lng),
        Point(body.dropoff.lat, body.dropoff.lng),
        settings.max_route_m,
    )
    return EstimateOut(
        amount=quote.amount,
        currency=quote.currency,
        distance_m=quote.distance_m,
        duration_s=quote.duration_s,
    )


@router.post("", status_code=201, response_model=RidePublic, responses=_CONFLICT)
def request_ride(
    body: RideIn,
    caller: CurrentPassenger,
    session: SessionDep,
    settings: SettingsDep,
    key: Annotated[str | None, Depends(idempotency.idempotency_key_header)],
) -> Any:
    endpoint = "POST /api/v1/rides"
    body_hash = idempotency.request_hash(endpoint, body.model_dump(mode="json"))
    replayed = idempotency.replay(session, caller.id, key, endpoint, body_hash)
    if replayed is not None:
        return replayed
    ride = services.request_ride(
        SqlRideRepository(session),
        OutboxJobs(session),
        settings.fare_rules,
        _route(settings),
        caller,
        pickup=Point(body.pickup.lat, body.pickup.lng),
        dropoff=Point(body.dropoff.lat, body.dropoff.lng),
        payment=PaymentKind(body.payment),
        payment_method_id=body.payment_method_id,
        now=utcnow(),
        max_route_m=settings.max_route_m,
        card_payments_enabled=True,  # Stripe, or its offline stand-in
        live=RedisLiveState(session),
        payments=SqlPaymentBook(session),
        velocity=RedisVelocity(get_sync_redis()),
        fraud=services.FraudRules(
            rides_per_hour=settings.fraud_rides_per_hour,
            failed_payments_per_hour=settings.fraud_failed_payments_per_hour,
            max_ride_amount=settings.fraud_max_ride_amount,
        ),
    )
    out = ride_out(ride).model_dump(mode="json")
    idempotency.remember(session, caller.id, key, endpoint, body_hash, 201, out)
    return JSONResponse(out, status_code=201)


@router.get("", response_model=RidePage)
def my_rides(
    caller: CurrentCaller,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
    status: RideStatus | None = None,
) -> RidePage:
    """My rides, newest first. Admins see every ride."""
    before = decode_cursor(cursor)
    who: dict[str, uuid.UUID] = {}
    if caller.role is Actor.PASSENGER:
        who["passenger_id"] = caller.id
    elif caller.role is Actor.DRIVER:
        who["driver_id"] = caller.id
    rows = list_rides(session, **who, status=status, before=before, limit=limit + 1)
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return RidePage(items=[ride_out(r) for r in items], next_cursor=next_cursor)


@router.get("/{ride_id}", response_model=RidePublic)
def get_ride(ride_id: uuid.UUID, caller: CurrentCaller, session: SessionDep) -> RidePublic:
    return ride_out(services.get_ride(SqlRideRepository(session), caller, ride_id))


@router.post("/{ride_id}/accept", response_model=RidePublic, responses=_CONFLICT)
def accept(ride_id: uuid.UUID, caller: CurrentDriver, session: SessionDep) -> RidePublic:
    ride = services.accept_ride(
        SqlRideRepository(session),
        OutboxJobs(session),
        caller,
        ride_id,
        utcnow(),
        live=RedisLiveState(session),
        offers=SqlOfferBook(session),
    )
    return ride_out(ride)


@router.post("/{ride_id}/decline", responses=_CONFLICT)
def decline(ride_id: uuid.UUID, caller: CurrentDriver, session: SessionDep) -> dict[str, str]:
    """Decline an offer: dispatch offers the ride to the next driver at once."""
    services.decline_ride(
        SqlRideRepository(session),
        OutboxJobs(session),
        SqlOfferBook(session),
        caller,
        ride_id,
        utcnow(),
    )
    return {"ride_id": str(ride_id), "offer": "declined"}


def _driver_action(action: str) -> Callable[..., RidePublic]:
    def endpoint(
        ride_id: uuid.UUID, caller: CurrentDriver, session: SessionDep, settings: SettingsDep
    ) -> RidePublic:
        ride = services.driver_transition(
            SqlRideRepository(session),
            OutboxJobs(session),
            settings.fare_rules,
            caller,
            ride_id,
            action,
            utcnow(),
            live=RedisLiveState(session),
            paths=RedisTripPaths(settings.ping_rules),
        )
        return ride_out(ride)

    endpoint.__name__ = action.replace("-", "_")
    return endpoint


for _action, _summary in (
    ("arrive", "The driver is at the pickup"),
    ("start", "The passenger is on board"),
    ("complete", "The trip is over; the final fare is fixed"),
    ("no-show", "The passenger did not come; the no-show fee applies"),
):
    router.add_api_route(
        f"/{{ride_id}}/{_action}",
        _driver_action(_action),
        methods=["POST"],
        response_model=RidePublic,
        summary=_summary,
        responses=_CONFLICT,
    )


@router.post("/{ride_id}/cancel", response_model=RidePublic, responses=_CONFLICT)
def cancel(
    ride_id: uuid.UUID,
    caller: CurrentCaller,
    session: SessionDep,
    settings: SettingsDep,
    body: Annotated[CancelIn | None, Body()] = None,
) -> RidePublic:
    ride = services.cancel_ride(
        SqlRideRepository(session),
        OutboxJobs(session),
        settings.fare_rules,
        caller,
        ride_id,
        body.reason if body else None,
        utcnow(),
        live=RedisLiveState(session),
        offers=SqlOfferBook(session),
    )
    return ride_out(ride)
