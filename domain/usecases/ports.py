"""What the use cases need from the outside world, as protocols `infra/` implements.

One `UnitOfWork` is one database transaction with everything bound to it: what is
enqueued or published through it happens only if, and after, it commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID

from domain.ledger import JournalEntry
from domain.rides import Ride, RideEvent, RideState
from domain.trip import PathPoint


@dataclass(frozen=True, slots=True)
class RideQuery:
    """A page of rides: whose (none: everyone's), in which status, after which cursor."""

    passenger_id: UUID | None = None
    driver_id: UUID | None = None
    status: str | None = None
    before: tuple[datetime, UUID] | None = None
    limit: int = 20


class RideRepository(Protocol):
    """Rides. A change goes through the `Ride` aggregate from `lock` or `add`: the
    repository keeps each one it handed out, and the unit of work, when it commits, saves
    them and queues the follow-ups of every event they recorded (`follow_ups.collect`), so
    no path can change a ride and skip what follows."""

    def get(self, ride_id: UUID, *, for_update: bool = False) -> RideState | None:
        """The ride's row, to read (a change goes through `lock`)."""

    def lock(self, ride_id: UUID) -> Ride | None:
        """The ride's aggregate, row-locked."""

    def add(self, **fields: Any) -> Ride:
        """A new ride's aggregate; a second open ride of the passenger is a `Conflict`."""

    def changed(self) -> list[Ride]:
        """The aggregates handed out here holding events not collected yet."""

    def open_ride_of_passenger(self, passenger_id: UUID) -> RideState | None: ...
    def active_ride_of_driver(self, driver_id: UUID) -> RideState | None: ...

    def save(self, ride: RideState) -> None:
        """Written now (not at the commit), so a unique rule broken is a `Conflict` here."""

    def page(self, query: RideQuery) -> list[RideState]:
        """Newest first, keyset-paginated on (created_at, id)."""

    def stuck(
        self, unstarted_before: datetime, silent_before: datetime, limit: int
    ) -> list[RideState]:
        """Rides accepted before `unstarted_before` and never started, and rides started
        before `silent_before` and not ended: candidates for `end_stuck`."""

    def store_path(self, ride: RideState, polyline: str, points: int) -> None:
        """The trip's recorded path, kept with the ride once it is completed."""

    def has_path(self, ride: RideState) -> bool: ...


class DispatchRide(RideState, Protocol):
    """A requested ride as the dispatcher moves it: its wave, and when it next moves."""

    dispatch_wave: int
    dispatch_deadline: datetime | None


class PendingOffer(Protocol):
    id: UUID
    ride_id: UUID
    driver_id: UUID
    expires_at: datetime


class Dispatching(Protocol):
    """The dispatcher's side of the offers. Each offer made or closed is told to its
    driver (their stream, a push) once the transaction commits."""

    def ride(self, ride_id: UUID) -> DispatchRide | None:
        """The ride, row-locked: one dispatcher moves it at a time."""

    def pending(self, ride_id: UUID) -> Sequence[PendingOffer]:
        """Its offers still pending (expired or not), row-locked."""

    def close(self, offer: PendingOffer, status: str, now: datetime) -> None: ...
    def offered_drivers(self, ride_id: UUID) -> set[str]: ...

    def offer(
        self, ride: DispatchRide, candidate: Any, wave: int, now: datetime, ttl_s: float
    ) -> PendingOffer | None:
        """Offer the ride to the candidate, unless they hold another offer meanwhile."""

    def save(self, ride: DispatchRide) -> None: ...

    def claim_due(self, now: datetime, lease_s: float) -> list[UUID]:
        """Requested rides whose deadline has passed, each claimed for `lease_s` (its
        deadline pushed that far), so that the next sweeps leave it to the move sent now."""


class DriverPositions(Protocol):
    """Where drivers are (the live view kept by their pings)."""

    def near(self, lat: float, lng: float, radius_m: float) -> list[Any]:
        """Idle drivers within `radius_m` heard from lately, as `domain.dispatch.Candidate`s."""

    def last_seen(self, driver_id: UUID) -> datetime | None: ...

    def forget_silent(self, now: datetime) -> int:
        """Drivers silent for longer than the stale window leave nearby search; how many."""


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

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        """Payments handed out in this unit of work whose `status` or `amount_received`
        changed since, each with those values as they were."""

    def changed_refunds(self) -> list[tuple[Any, dict[str, Any]]]:
        """The same for refunds (their `status`)."""

    def standing_holds(
        self, unchanged_since: datetime, lapsing_by: datetime, limit: int
    ) -> list[StandingHold]:
        """Card holds still standing, unchanged since `unchanged_since` or lapsing at
        Stripe before `lapsing_by`."""


@dataclass(frozen=True, slots=True)
class StandingHold:
    ride_id: UUID
    ride_status: str
    capture_before: datetime | None


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

    def transfer(
        self,
        *,
        key: str,
        statement_id: UUID,
        driver_id: UUID,
        destination: str,
        amount: int,
        currency: str,
    ) -> str:
        """A statement's payout to the driver's account; the transfer's id. A refusal
        (funds not available yet, an account not set up) raises `PaymentRefused`."""


class WebhookInbox(Protocol):
    """Stripe's events as received (verified, stored once by their id)."""

    def get(self, event_id: str) -> Any | None:
        """The event, row-locked."""

    def save(self, event: Any) -> None: ...

    def unprocessed(self, received_before: datetime, limit: int) -> list[str]:
        """Ids of the events received before then and not processed yet, oldest first."""


class PushLog(Protocol):
    def log(self, pushes: list[Any]) -> None:
        """Log each planned push once (its key), in this transaction."""

    def just_logged(self) -> list[tuple[UUID, str]]:
        """(id, kind) of each notification logged here since the last call: the unit of
        work queues their deliveries."""


@dataclass(frozen=True, slots=True)
class ComeBack:
    """FCM asked us to come back (`after_s`: its Retry-After, if it gave one)."""

    after_s: float | None


class PushDeliveries(Protocol):
    """Sending a logged push to its user's devices. Each step commits on its own: a
    delivery is claimed (committed) before the push goes out and recorded after, so a
    device never gets one notification twice (at most once)."""

    def message(self, notification_id: UUID) -> tuple[Any, list[str]] | None:
        """The push as FCM takes it and its user's device tokens; None if not logged."""

    def ready(self) -> bool:
        """FCM can be reached (its credentials' token endpoint answers)."""

    def claim(self, notification_id: UUID, token: str) -> UUID | None:
        """The delivery to this device, claimed; None if sent, claimed or settled."""

    def send(self, delivery_id: UUID, token: str, push: Any) -> ComeBack | None:
        """Send and record FCM's answer (a dead token is forgotten)."""

    def settle(self, notification_id: UUID, *, waiting: bool) -> None:
        """The log entry's status from its deliveries (`waiting`: some will be retried)."""


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


@dataclass(frozen=True, slots=True)
class NewStatement:
    driver_id: UUID
    period: str  # the UTC day, ISO
    currency: str
    earned: int
    cash_held: int
    net: int
    rides: int
    carried_in: int
    payout_amount: int
    carry_out: int
    payout_status: str


class Statements(Protocol):
    """Settlement statements (made by the daily beat job)."""

    def driver_lines(
        self, start: datetime, end: datetime
    ) -> list[tuple[str, str, int, UUID | None]]:
        """(account, currency, amount, ride) of every driver-payable and driver-cash ledger
        line posted in [start, end)."""

    def carried_before(self, driver_id: UUID, currency: str, period: str) -> int:
        """The `carry_out` of the driver's latest statement before `period` (0: none)."""

    def add_once(self, statement: NewStatement) -> bool:
        """Store it unless the driver has one for that day and currency; whether it was."""

    def due(self, tried_before: datetime, limit: int) -> list[UUID]:
        """Statements still to pay, never tried or last tried before `tried_before`."""

    def get(self, statement_id: UUID) -> Any | None:
        """The statement, row-locked."""

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        """Statements handed out here whose `payout_status` changed since, with what it was."""

    def save(self, statement: Any) -> None: ...


class PayoutAccounts(Protocol):
    """Drivers' accounts at the payment provider, where their statements are paid."""

    def onboarding_link(self, driver_id: UUID) -> str:
        """A link where the driver sets up (or finishes setting up) their account; the
        account is created once."""

    def account_of(self, driver_id: UUID) -> str | None:
        """The driver's account id at the provider, if they have one."""


class JobQueue(Protocol):
    """Jobs written with the transaction (an outbox) and sent after it commits."""

    def enqueue(self, task: str, **kwargs: Any) -> None: ...

    def run_here(self, task: str, work: Callable[[], None], **kwargs: Any) -> None:
        """A job this process does itself right after the commit (`work`); should that
        fail, or the process die first, a worker runs `task(**kwargs)` instead."""

    def complete(self, job_id: str | None) -> None:
        """The job this transaction runs is done: its outbox row closes with the commit."""

    def resend_stale(self, older_than_s: float) -> int:
        """Send again the jobs written that long ago and never completed; how many. Jobs
        completed a day ago are forgotten."""


class LivePublisher(Protocol):
    """Tells the hot path (pings, SSE, polling) of a ride's new state."""

    def ride_changed(self, ride: RideState, event: RideEvent) -> Callable[[], None]:
        """The publish of this change, to run once it has committed (idempotent)."""

    def republish(self, ride: RideState, status: str, at: datetime) -> bool:
        """The same publish again, now; False when it had been done (no newer facts are
        overwritten, no status is emitted twice)."""


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

    def points(self, ride_id: UUID, since: datetime | None = None) -> list[PathPoint]:
        """The ride's recorded path from `since`, in the order the pings were taken."""


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

    def get(self, rating_id: UUID) -> Any | None: ...

    def just_added(self) -> list[Any]:
        """The ratings added here since the last call: the unit of work follows them up."""

    def stars_of(self, user_id: UUID) -> tuple[str, list[int]] | None:
        """The user's role and every star they received, newest first; the
        user's row locked, so two recomputations of one user run one after the other.
        None if there is no such user (yet)."""

    def save_summary(self, user_id: UUID, side: str, summary: Any, now: datetime) -> None: ...

    def follow_alert(self, user_id: UUID, summary: Any | None, now: datetime) -> None:
        """Keep the user's low-rating alert open with this summary, or close it (None)."""


class Devices(Protocol):
    """Users' push tokens and whether they want promotions."""

    def register(self, user_id: UUID, token: str, platform: str) -> None: ...
    def unregister(self, user_id: UUID, token: str) -> bool: ...
    def set_promotions(self, user_id: UUID, wanted: bool) -> None: ...


class BroadcastStatus(StrEnum):
    """`planning` while recipients are still being added, `sending` while pushes wait,
    then `done`."""

    PLANNING = "planning"
    SENDING = "sending"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class BroadcastProgress:
    """How far a broadcast got."""

    id: UUID
    planned: bool  # every opted-in user has their entry
    recipients: int  # entries so far
    sent: int  # of them, reached on at least one device
    queued: int  # of them, not delivered yet

    @property
    def status(self) -> BroadcastStatus:
        if not self.planned:
            return BroadcastStatus.PLANNING
        return BroadcastStatus.SENDING if self.queued else BroadcastStatus.DONE


class Broadcasts(Protocol):
    """Promotional messages to every user who opted in."""

    def create(self, title: str, body: str, created_by: UUID) -> UUID: ...

    def next_batch(self, broadcast_id: UUID) -> tuple[list[Any], bool]:
        """The promotions for the next batch of opted-in users (the broadcast moves past
        them), and whether every one of them is planned then."""


class Views(Protocol):
    """What is only read, for an answer (never to decide a change): one read-only
    session, no unit of work. Each is one query a page or an app shows as it is."""

    def overview(self, since_h: int, active_limit: int) -> dict[str, Any]:
        """The ops page: rides and payments by status over the last `since_h` hours, the
        queues, the drivers online, the open low-rating alerts, the rides under way."""

    def balances_of(self, accounts: list[str]) -> dict[tuple[str, str], int]:
        """{(account, currency): balance} of these accounts, derived from their lines."""

    def postings(self, accounts: list[str], before_line: int | None, limit: int) -> list[Posting]:
        """These accounts' lines, newest first, before the line id `before_line`."""

    def statements_of(
        self, driver_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Any]:
        """The driver's statements, newest first, keyset-paginated on (created_at, id)."""

    def ratings_received(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Any]:
        """Ratings the user received, newest first, keyset-paginated on (created_at, id)."""

    def rating_summary(self, user_id: UUID) -> Any | None:
        """The summary the rating worker last stored for the user, if any."""

    def open_rating_alerts(self, before: tuple[datetime, UUID] | None, limit: int) -> list[Any]:
        """Low-rating alerts not closed yet, newest first, keyset-paginated."""

    def notifications_of(
        self, user_id: UUID, before: tuple[datetime, UUID] | None, limit: int
    ) -> list[Any]:
        """The pushes logged for the user, newest first, keyset-paginated."""

    def wants_promotions(self, user_id: UUID) -> bool:
        """Ride and payment pushes always go out; promotions only to those who opted in."""

    def broadcast_progress(self, broadcast_id: UUID) -> BroadcastProgress:
        """How far a broadcast got; NotFound if there is no such broadcast."""


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
    ratings: Ratings
    devices: Devices
    broadcasts: Broadcasts
    webhooks: WebhookInbox
    pushes: PushLog
    rider_alerts: RiderAlerts
    dispatching: Dispatching

    @property
    def drivers(self) -> DriverPositions:
        """Made when first used."""

    @property
    def card_gateway(self) -> CardGateway:
        """Made when first used (the API's requests mostly never need it)."""
