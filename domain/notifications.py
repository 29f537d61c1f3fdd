"""Which pushes a ride event sends, to whom, saying what. Pure: a worker stores them in the
notification log and another delivers them (one message per device).

Every push carries a data payload the app routes on when tapped: `type` (the kind),
`ride_id`, and the `screen` to open. A ride's pushes to one user share one collapse key
(`ride-{id}`): a device that was offline gets only the newest step, not the whole ride
replayed, and a device never holds more than one collapse key per ride (FCM keeps at most
four per device; the rest are dropped). Each push has a TTL, so a stale time-critical
push is dropped rather than shown late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from domain.access import Actor
from domain.rides import RideState, RideStatus


class NotificationKind(StrEnum):
    """What a notification is about."""

    DRIVER_ASSIGNED = "driver_assigned"
    DRIVER_ARRIVING = "driver_arriving"
    DRIVER_ARRIVED = "driver_arrived"
    TRIP_STARTED = "trip_started"
    TRIP_COMPLETED = "trip_completed"
    RIDE_CANCELLED = "ride_cancelled"
    NO_SHOW = "no_show"
    NO_DRIVER_FOUND = "no_driver_found"
    OFFER = "offer"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_ACTION_NEEDED = "payment_requires_action"
    REFUNDED = "refunded"
    RATING_RECEIVED = "rating_received"
    PROMOTION = "promotion"


class NotificationStatus(StrEnum):
    """How far a notification's delivery got: `queued`, `sent` (FCM took it for at least
    one of the user's devices), `failed` (no device took it), `unknown` (FCM's answer never
    came; never sent again)."""

    QUEUED = "queued"
    SENT = "sent"  # delivered to FCM for at least one of the user's devices
    FAILED = "failed"  # no device took it (none registered, or all refused)
    # FCM's answer never came for any device (a timeout after the send): maybe delivered,
    # never sent again (at most once)
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PlannedPush:
    user_id: UUID
    kind: NotificationKind
    title: str
    body: str
    key: str  # what it is about, once per user: `ride:{id}:{kind}`, `refund:{id}`, ...
    ride_id: UUID | None = None
    data: dict[str, str] = field(default_factory=dict)
    high_priority: bool = False
    data_only: bool = False
    collapse_key: str | None = None
    ttl_s: int = 3600


@dataclass(frozen=True, slots=True)
class RideFacts:
    id: UUID
    passenger_id: UUID
    driver_id: UUID | None
    fare_amount: int | None
    fee_amount: int | None
    currency: str
    cancelled_by: str | None

    @classmethod
    def of(cls, ride: RideState) -> RideFacts:
        return cls(
            ride.id,
            ride.passenger_id,
            ride.driver_id,
            ride.fare_amount,
            ride.fee_amount,
            ride.currency,
            ride.cancelled_by,
        )


def money_text(amount: int, currency: str) -> str:
    """Minor units as the push shows them: `12.50 USD`."""
    return f"{amount // 100}.{amount % 100:02d} {currency.upper()}"


def ride_collapse_key(ride_id: UUID) -> str:
    """One per ride: its steps replace each other, and a device holds one key per ride."""
    return f"ride-{ride_id}"


def ride_pushes(status: RideStatus, ride: RideFacts) -> list[PlannedPush]:
    """What `status` tells the ride's passenger and driver."""

    def to(
        user: UUID | None,
        kind: NotificationKind,
        title: str,
        body: str,
        *,
        urgent: bool = False,
        ttl_s: int = 3600,
    ) -> list[PlannedPush]:
        if user is None:
            return []
        data = {"type": str(kind), "ride_id": str(ride.id), "screen": "ride"}
        return [
            PlannedPush(
                user_id=user,
                kind=kind,
                title=title,
                body=body,
                key=f"ride:{ride.id}:{kind}",
                ride_id=ride.id,
                data=data,
                high_priority=urgent,
                collapse_key=ride_collapse_key(ride.id),
                ttl_s=ttl_s,
            )
        ]

    fee = (
        f" A fee of {money_text(ride.fee_amount, ride.currency)} applies."
        if ride.fee_amount
        else ""
    )
    if status is RideStatus.ACCEPTED:
        return to(
            ride.passenger_id,
            NotificationKind.DRIVER_ASSIGNED,
            "Your driver is on the way",
            "Follow them on the map.",
            urgent=True,
            ttl_s=300,
        )
    if status is RideStatus.ARRIVED:
        return to(
            ride.passenger_id,
            NotificationKind.DRIVER_ARRIVED,
            "Your driver is here",
            "They are waiting at the pickup.",
            urgent=True,
            ttl_s=300,
        )
    if status is RideStatus.IN_PROGRESS:
        return to(
            ride.passenger_id, NotificationKind.TRIP_STARTED, "Trip started", "Enjoy the ride."
        )
    if status is RideStatus.COMPLETED:
        fare = money_text(ride.fare_amount or 0, ride.currency)
        return to(
            ride.passenger_id,
            NotificationKind.TRIP_COMPLETED,
            "You have arrived",
            f"Your fare: {fare}.",
        ) + to(ride.driver_id, NotificationKind.TRIP_COMPLETED, "Trip completed", f"Fare: {fare}.")
    if status is RideStatus.NO_SHOW:
        return to(
            ride.passenger_id,
            NotificationKind.NO_SHOW,
            "Your driver could not find you",
            "The ride was ended." + fee,
        )
    if status is RideStatus.EXPIRED:
        return to(
            ride.passenger_id,
            NotificationKind.NO_DRIVER_FOUND,
            "No driver found",
            "No driver was free near you. Please try again.",
        )
    if status is RideStatus.CANCELLED:
        by = ride.cancelled_by
        to_passenger = to(
            ride.passenger_id,
            NotificationKind.RIDE_CANCELLED,
            "Your ride was cancelled",
            ("You cancelled the ride." if by == Actor.PASSENGER else "The ride was cancelled.")
            + fee,
        )
        to_driver = to(
            ride.driver_id,
            NotificationKind.RIDE_CANCELLED,
            "Ride cancelled",
            "The passenger cancelled the ride."
            if by == Actor.PASSENGER
            else "The ride was cancelled.",
            urgent=True,
            ttl_s=300,
        )
        if by == Actor.PASSENGER:  # the other side: the driver, if one was assigned
            return to_driver + (to_passenger if ride.fee_amount else [])
        if by == Actor.DRIVER:
            return to_passenger
        return to_passenger + to_driver  # an admin or the system: both sides
    return []


def iso_utc(at: datetime) -> str:
    """A time as every payload spells it: ISO 8601 in UTC, `Z`."""
    return datetime.fromtimestamp(at.timestamp(), UTC).isoformat().replace("+00:00", "Z")


def offer_push(
    driver_id: UUID, ride_id: UUID, offer_id: UUID, expires_at: str, ttl_s: int
) -> PlannedPush:
    """A new offer: high priority and data-only (the driver app wakes and rings itself),
    living no longer than the offer."""
    return PlannedPush(
        user_id=driver_id,
        kind=NotificationKind.OFFER,
        title="New ride offer",
        body="Open the app to accept it.",
        key=f"offer:{offer_id}",
        ride_id=ride_id,
        data={
            "type": str(NotificationKind.OFFER),
            "ride_id": str(ride_id),
            "offer_id": str(offer_id),
            "expires_at": expires_at,
            "screen": "offer",
        },
        high_priority=True,
        data_only=True,
        ttl_s=max(1, ttl_s),
    )


_PAYMENT_TEXT = {
    NotificationKind.PAYMENT_SUCCEEDED: ("Payment received", "{amount} was charged to your card."),
    NotificationKind.PAYMENT_FAILED: (
        "Your card was declined",
        "{amount} is outstanding. Update your card to ride again.",
    ),
    NotificationKind.PAYMENT_ACTION_NEEDED: (
        "Confirm your payment",
        "Your bank asks you to confirm {amount} in the app.",
    ),
    NotificationKind.REFUNDED: ("Refund on its way", "{amount} is being refunded to your card."),
}


def payment_push(
    kind: NotificationKind,
    passenger_id: UUID,
    ride_id: UUID,
    subject: str,
    amount: int,
    currency: str,
) -> PlannedPush:
    """A payment's outcome told to the rider; `subject` names what it is about, once
    (`payment:{id}`, `refund:{id}`)."""
    title, body = _PAYMENT_TEXT[kind]
    screen = (
        "payment"
        if kind
        in (
            NotificationKind.PAYMENT_FAILED,
            NotificationKind.PAYMENT_ACTION_NEEDED,
        )
        else "ride"
    )
    return PlannedPush(
        user_id=passenger_id,
        kind=kind,
        title=title,
        body=body.format(amount=money_text(amount, currency)),
        key=f"{subject}:{kind}",
        ride_id=ride_id,
        data={"type": str(kind), "ride_id": str(ride_id), "screen": screen},
        high_priority=kind is NotificationKind.PAYMENT_ACTION_NEEDED,
    )


def rating_push(ratee_id: UUID, ride_id: UUID, rating_id: UUID, stars: int) -> PlannedPush:
    return PlannedPush(
        user_id=ratee_id,
        kind=NotificationKind.RATING_RECEIVED,
        title="You were rated",
        body=f"{stars} star{'s' if stars != 1 else ''} for your last ride.",
        key=f"rating:{rating_id}",
        ride_id=ride_id,
        data={
            "type": str(NotificationKind.RATING_RECEIVED),
            "ride_id": str(ride_id),
            "screen": "ratings",
        },
    )


def promotion_push(user_id: UUID, broadcast_id: UUID, title: str, body: str) -> PlannedPush:
    """A promotional message: only to users who opted in, normal priority, a day to live."""
    return PlannedPush(
        user_id=user_id,
        kind=NotificationKind.PROMOTION,
        title=title,
        body=body,
        key=f"broadcast:{broadcast_id}",
        data={
            "type": str(NotificationKind.PROMOTION),
            "broadcast_id": str(broadcast_id),
            "screen": "home",
        },
        ttl_s=86_400,
    )


def arriving_push(ride: RideFacts) -> PlannedPush:
    """The driver is a minute or two away: high priority, stale after two minutes."""
    kind = NotificationKind.DRIVER_ARRIVING
    return PlannedPush(
        user_id=ride.passenger_id,
        kind=kind,
        title="Your driver is arriving",
        body="Get ready: they are about to reach the pickup.",
        key=f"ride:{ride.id}:{kind}",
        ride_id=ride.id,
        data={"type": str(kind), "ride_id": str(ride.id), "screen": "ride"},
        high_priority=True,
        collapse_key=ride_collapse_key(ride.id),
        ttl_s=120,
    )
