"""What the use cases need from the outside world, as protocols `infra/` implements.

One `UnitOfWork` is one database transaction with everything bound to it: what is
enqueued or published through it happens only if, and after, it commits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from domain.ledger import JournalEntry
from domain.rides import RideEvent, RideState


@dataclass(frozen=True, slots=True)
class RideQuery:
    """A page of rides: whose (none: everyone's), in which status, after which cursor."""

    passenger_id: UUID | None = None
    driver_id: UUID | None = None
    status: str | None = None
    before: tuple[datetime, UUID] | None = None
    limit: int = 20


class RideRepository(Protocol):
    def get(self, ride_id: UUID, *, for_update: bool = False) -> RideState | None: ...
    def open_ride_of_passenger(self, passenger_id: UUID) -> RideState | None: ...
    def active_ride_of_driver(self, driver_id: UUID) -> RideState | None: ...
    def create(self, **fields: Any) -> RideState: ...
    def save(self, ride: RideState) -> None: ...
    def page(self, query: RideQuery) -> list[RideState]:
        """Newest first, keyset-paginated on (created_at, id)."""


class OpenOffer(Protocol):
    ride_id: UUID
    driver_id: UUID
    expires_at: datetime


class OfferBook(Protocol):
    """The offers dispatch made: a driver accepts a ride only with an open offer for it."""

    def open_offer(self, ride_id: UUID, driver_id: UUID, now: datetime) -> OpenOffer | None: ...

    def ever_offered(self, ride_id: UUID, driver_id: UUID) -> bool:
        """Whether the ride was ever offered to this driver (in any state since)."""

    def take(self, ride: RideState, driver_id: UUID, now: datetime) -> None:
        """Mark the driver's open offer accepted (others withdrawn); Conflict if none."""

    def decline(self, ride: RideState, driver_id: UUID, now: datetime) -> None: ...
    def withdraw_all(self, ride: RideState, reason: str, now: datetime) -> None: ...


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

    # the workers' side: rows read row-locked, changed in place, saved
    def of_kind(self, ride_id: UUID, kind: str) -> Any | None:
        """The ride's payment of this kind (authorization, extra charge), row-locked."""

    def add(self, ride: Any, kind: str, amount: int, payment_method_id: str | None) -> Any:
        """A new payment of the ride, pending until a worker has asked Stripe."""

    def by_intent(self, intent_id: str) -> Any | None:
        """The payment of a Stripe PaymentIntent, row-locked."""

    def refund(self, refund_id: UUID) -> Any | None:
        """A refund, row-locked."""

    def refund_by_stripe_id(self, stripe_refund_id: str) -> Any | None:
        """A refund by Stripe's id for it, row-locked."""

    def customer_of(self, user_id: UUID) -> str | None:
        """The rider's Stripe customer, if they saved a card."""

    def save(self, row: Any) -> None: ...

    def stuck(self, before: datetime, limit: int) -> list[Any]:
        """Payments still `pending` since `before`, row-locked (skipping those locked)."""

    def stuck_refunds(self, before: datetime, limit: int) -> list[Any]:
        """Refunds still `pending` since `before`."""


class CardGateway(Protocol):
    """Stripe as the workers call it: every call keyed with our ids (a repeat moves no
    money twice); a card's refusal raises `CardDeclined` or `PaymentRefused`."""

    def charging_card(self, customer: str) -> str | None: ...

    def charge_off_session(
        self,
        *,
        payment_id: UUID,
        ride_id: UUID,
        amount: int,
        currency: str,
        customer: str,
        payment_method: str,
        hold: bool,
        purpose: str,
    ) -> Any:
        """A PaymentIntent confirmed off-session (manual capture when `hold`)."""

    def capture(self, intent_id: str, ride_id: UUID, amount: int) -> Any: ...
    def release(self, intent_id: str, ride_id: UUID) -> Any: ...
    def intent(self, intent_id: str) -> Any: ...
    def refund(self, refund_id: UUID, intent_id: str, amount: int, reason: str) -> Any: ...
    def refund_state(self, stripe_refund_id: str) -> str: ...


class WebhookInbox(Protocol):
    """Stripe's events as received (verified, stored once by their id)."""

    def get(self, event_id: str) -> Any | None:
        """The event, row-locked."""

    def save(self, event: Any) -> None: ...


class PushLog(Protocol):
    def log(self, pushes: list[Any]) -> None:
        """Log each planned push once (its key) and queue its delivery, in this
        transaction."""


class RiderAlerts(Protocol):
    def payment_problem(self, passenger_id: UUID, kind: str, event: dict[str, Any]) -> None:
        """Once committed: an event on the rider's own stream, and a count for the fraud
        limits (failed payments per hour)."""


@dataclass(frozen=True, slots=True)
class Posting:
    """One ledger line with its entry, as a statement shows it."""

    line_id: int
    entry_key: str
    kind: str
    account: str
    amount: int
    currency: str
    ride_id: UUID | None
    posted_at: datetime


class Ledger(Protocol):
    def post(self, entry: JournalEntry) -> bool: ...
    def entry_amount(self, key: str) -> int | None: ...

    def balances_of(self, accounts: list[str]) -> dict[tuple[str, str], int]:
        """{(account, currency): balance} of these accounts, derived from their lines."""

    def postings(self, accounts: list[str], before_line: int | None, limit: int) -> list[Posting]:
        """These accounts' lines, newest first, before the line id `before_line`."""


class Statements(Protocol):
    """Settlement statements (made by the daily beat job)."""

    def of_driver(self, driver_id: UUID, limit: int = 100) -> list[Any]: ...


class OpsView(Protocol):
    """What the ops page shows: counts by status, queues, alerts, the rides under way."""

    def overview(self, since_h: int, active_limit: int) -> dict[str, Any]: ...


class PayoutAccounts(Protocol):
    """Drivers' accounts at the payment provider, where their statements are paid."""

    def onboarding_link(self, driver_id: UUID) -> str:
        """A link where the driver sets up (or finishes setting up) their account; the
        account is created once."""


class JobQueue(Protocol):
    """Jobs written with the transaction (an outbox) and sent after it commits."""

    def enqueue(self, task: str, **kwargs: Any) -> None: ...

    def run_here(self, task: str, work: Callable[[], None], **kwargs: Any) -> None:
        """A job this process does itself right after the commit (`work`); should that
        fail, or the process die first, a worker runs `task(**kwargs)` instead."""


class LivePublisher(Protocol):
    """Tells the hot path (pings, SSE, polling) of a ride's new state."""

    def ride_changed(self, ride: RideState, event: RideEvent) -> Callable[[], None]:
        """The publish of this change, to run once it has committed (idempotent)."""


class Velocity(Protocol):
    """Fraud basics: how often a rider did something lately."""

    def hit(self, what: str, subject: UUID, limit: int, window_s: int) -> int:
        """Count one `what` for `subject`; 0 if within `limit` per window, else the
        seconds until the window resets."""

    def count(self, what: str, subject: UUID, window_s: int) -> int: ...


class TripPaths(Protocol):
    def travelled_m(self, ride_id: UUID, since: datetime | None = None) -> int | None:
        """Metres travelled along the ride's recorded path, from `since` (its start)."""
        ...


@dataclass(frozen=True, slots=True)
class Card:
    """A saved card as the rider's app shows it; no card data beyond this reaches us."""

    id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    default: bool = False


@dataclass(frozen=True, slots=True)
class IntentInfo:
    id: str
    client_secret: str | None
    status: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class SetupIntentInfo:
    id: str
    client_secret: str
    customer_id: str


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


@dataclass(frozen=True, slots=True)
class NewRating:
    ride_id: UUID
    rater_id: UUID
    ratee_id: UUID
    ratee_side: str
    stars: int
    comment: str | None
    tags: list[str]
    created_at: datetime


class Ratings(Protocol):
    def add(self, rating: NewRating) -> Any:
        """Store a rating; `Conflict` (`already_rated`) if this rater rated this ride."""

    def received(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Any]:
        """Ratings the user received, newest first, keyset-paginated on (created_at, id)."""

    def summary(self, user_id: UUID) -> Any | None: ...
    def open_alerts(self, limit: int) -> list[Any]: ...


class Devices(Protocol):
    """Users' push tokens and their notification log."""

    def register(self, user_id: UUID, token: str, platform: str) -> None: ...
    def unregister(self, user_id: UUID, token: str) -> bool: ...
    def promotions(self, user_id: UUID) -> bool: ...
    def set_promotions(self, user_id: UUID, wanted: bool) -> None: ...

    def log(self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class BroadcastProgress:
    id: UUID
    planned: bool  # every opted-in user has their entry
    recipients: int  # entries so far
    sent: int  # of them, reached on at least one device
    queued: int  # of them, not delivered yet

    @property
    def status(self) -> str:
        if not self.planned:
            return "planning"
        return "sending" if self.queued else "done"


class Broadcasts(Protocol):
    """Promotional messages to every user who opted in."""

    def create(self, title: str, body: str, created_by: UUID) -> UUID: ...

    def progress(self, broadcast_id: UUID) -> BroadcastProgress:
        """NotFound if there is no such broadcast."""


class UnitOfWork(Protocol):
    """One transaction and every port bound to it."""

    rides: RideRepository
    offers: OfferBook
    payments: PaymentBook
    ledger: Ledger
    jobs: JobQueue
    live: LivePublisher
    velocity: Velocity
    paths: TripPaths
    cards: Cards
    statements: Statements
    payout_accounts: PayoutAccounts
    ops: OpsView
    ratings: Ratings
    devices: Devices
    broadcasts: Broadcasts
    webhooks: WebhookInbox
    pushes: PushLog
    rider_alerts: RiderAlerts

    @property
    def card_gateway(self) -> CardGateway:
        """Made when first used (the API's requests mostly never need it)."""
