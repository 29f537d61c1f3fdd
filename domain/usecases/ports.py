"""What the use cases need from the outside world, as protocols `infra/` implements.

One `UnitOfWork` is one database transaction with everything bound to it: what is
enqueued or published through it happens only if, and after, it commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain.ledger import JournalEntry
from domain.payments import Card, IntentInfo, SetupIntentInfo
from domain.rides import RideEvent, RideState


class RideRepository(Protocol):
    def get(self, ride_id: UUID, *, for_update: bool = False) -> RideState | None: ...
    def open_ride_of_passenger(self, passenger_id: UUID) -> RideState | None: ...
    def active_ride_of_driver(self, driver_id: UUID) -> RideState | None: ...
    def create(self, **fields: Any) -> RideState: ...
    def save(self, ride: RideState) -> None: ...
    def page(
        self,
        *,
        passenger_id: UUID | None,
        driver_id: UUID | None,
        status: str | None,
        before: tuple[datetime, UUID] | None,
        limit: int,
    ) -> list[RideState]:
        """Newest first, keyset-paginated on (created_at, id)."""


class OpenOffer(Protocol):
    ride_id: UUID
    driver_id: UUID
    expires_at: datetime


class OfferBook(Protocol):
    """The offers dispatch made: a driver accepts a ride only with an open offer for it."""

    def open_offer(self, ride_id: UUID, driver_id: UUID, now: datetime) -> OpenOffer | None: ...

    def take(self, ride: RideState, driver_id: UUID, now: datetime) -> None:
        """Mark the driver's open offer accepted (others withdrawn); Conflict if none."""

    def decline(self, ride: RideState, driver_id: UUID, now: datetime) -> None: ...
    def withdraw_all(self, ride: RideState, reason: str, now: datetime) -> None: ...


class PaymentRecord(Protocol):
    id: UUID
    ride_id: UUID
    passenger_id: UUID
    kind: str
    status: str
    amount: int
    amount_received: int
    amount_refunded: int
    currency: str


class PaymentBook(Protocol):
    """Card payments as the use cases see them (Stripe itself is behind workers)."""

    def outstanding(self, passenger_id: UUID) -> int:
        """Minor units the passenger owes from failed charges."""

    def can_charge(self, passenger_id: UUID) -> bool:
        """The passenger has saved a card (a Stripe customer exists)."""

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        """Record the authorization to make for the ride (a worker asks Stripe)."""

    def of_ride(self, ride_id: UUID) -> list[Any]: ...
    def get(self, payment_id: UUID, *, for_update: bool = False) -> Any | None: ...
    def refunds_not_failed(self, payment_id: UUID) -> int: ...

    def add_refund(self, payment: Any, amount: int, reason: str, requested_by: UUID) -> Any:
        """Record a pending refund (a worker asks Stripe)."""


class Ledger(Protocol):
    def post(self, entry: JournalEntry) -> bool: ...
    def entry_amount(self, key: str) -> int | None: ...


class JobQueue(Protocol):
    """Jobs written with the transaction (an outbox) and sent after it commits."""

    def enqueue(self, task: str, **kwargs: Any) -> None: ...


class LivePublisher(Protocol):
    """Tells the hot path (pings, SSE, polling) of a ride's new state, after commit."""

    def ride_changed(self, ride: RideState, event: RideEvent) -> None: ...


class Velocity(Protocol):
    """Fraud basics: how often a rider did something lately."""

    def hit(self, what: str, subject: UUID, limit: int, window_s: int) -> int:
        """Count one `what` for `subject`; 0 if within `limit` per window, else the
        seconds until the window resets."""

    def count(self, what: str, subject: UUID, window_s: int) -> int: ...


class TripPaths(Protocol):
    def travelled_m(self, ride_id: UUID) -> int | None: ...


class Cards(Protocol):
    """The rider's cards at the payment provider: the calls whose answer is the response
    (short timeouts; errors mapped to `domain.payments` errors by the gateway)."""

    def customer(self, user_id: UUID) -> str:
        """The user's customer id at the provider, created once."""

    def setup_intent(self, customer: str, user_id: UUID) -> SetupIntentInfo: ...
    def saved(self, customer: str) -> list[Card]: ...

    def owned(self, customer: str, payment_method_id: str) -> Card:
        """The card if it is this customer's; `PaymentObjectMissing` otherwise."""

    def detach(self, customer: str, payment_method_id: str) -> None: ...
    def make_default(self, customer: str, payment_method_id: str) -> None: ...
    def intent(self, intent_id: str) -> IntentInfo: ...

    def confirm(self, intent_id: str, payment_id: UUID) -> Any:
        """Confirm the intent if it still needs it; the provider's intent either way."""

    def apply(self, payment: Any, intent: Any) -> None:
        """Mirror the provider's intent onto our payment record, and post what it took."""


class UnitOfWork(Protocol):
    """One transaction and every port bound to it (read-only: implementations may
    narrow the types)."""

    @property
    def rides(self) -> RideRepository: ...

    @property
    def offers(self) -> OfferBook: ...

    @property
    def payments(self) -> PaymentBook: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def jobs(self) -> JobQueue: ...

    @property
    def live(self) -> LivePublisher: ...

    @property
    def velocity(self) -> Velocity: ...

    @property
    def paths(self) -> TripPaths: ...

    @property
    def cards(self) -> Cards: ...
