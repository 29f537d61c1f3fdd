"""In-memory fakes of the use cases' ports: a whole unit of work without a database."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from domain.errors import NotFound
from domain.ledger import JournalEntry
from domain.notifications import promotion_push
from domain.payments import PaymentObjectMissing
from domain.rides import DRIVER_ACTIVE, OPEN, Ride, RideEvent, RideState
from domain.trip import PathPoint
from domain.usecases.follow_ups import Handed, collect
from domain.usecases.ports import (
    BroadcastProgress,
    Card,
    ComeBack,
    IntentInfo,
    Posting,
    SetupIntentInfo,
    StandingHold,
)
from tests.unit.domain.test_rides import T0, FakeRide


class MemoryRides:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, FakeRide] = {}
        self.seen: dict[uuid.UUID, Ride] = {}

    def lock(self, ride_id: uuid.UUID) -> Ride | None:
        row = self.rows.get(ride_id)
        if row is None:
            return None
        return self.seen.setdefault(ride_id, Ride(row))

    def add(self, **fields: Any) -> Ride:
        fields.pop("payment_method_id", None)
        if any(r.passenger_id == fields["passenger_id"] and r.status in OPEN
               for r in self.rows.values()):  # fmt: skip
            from domain.errors import Conflict

            raise Conflict("you already have an open ride", code="ride_already_open")
        row = FakeRide(**fields)
        self.rows[row.id] = row
        return self.seen.setdefault(row.id, Ride(row))

    def changed(self) -> list[Ride]:
        return [ride for ride in self.seen.values() if ride.events]

    def get(self, ride_id: uuid.UUID, *, for_update: bool = False) -> RideState | None:
        return self.rows.get(ride_id)

    def open_ride_of_passenger(self, passenger_id: uuid.UUID) -> RideState | None:
        return next(
            (r for r in self.rows.values() if r.passenger_id == passenger_id and r.status in OPEN),
            None,
        )

    def active_ride_of_driver(self, driver_id: uuid.UUID) -> RideState | None:
        return next(
            (
                r
                for r in self.rows.values()
                if r.driver_id == driver_id and r.status in DRIVER_ACTIVE
            ),
            None,
        )

    def save(self, ride: RideState) -> None:
        pass

    def page(self, query: Any) -> list[RideState]:
        found = [
            r
            for r in self.rows.values()
            if query.passenger_id in (None, r.passenger_id)
            and query.driver_id in (None, r.driver_id)
            and query.status in (None, r.status)
        ]
        return sorted(found, key=lambda r: r.created_at, reverse=True)[: query.limit]

    def stuck(
        self, unstarted_before: datetime, silent_before: datetime, limit: int
    ) -> list[RideState]:
        return [
            r
            for r in self.rows.values()
            if (
                r.status in ("accepted", "arrived")
                and r.accepted_at is not None
                and r.accepted_at < unstarted_before
            )
            or (r.status == "in_progress" and r.started_at and r.started_at < silent_before)
        ][:limit]

    def has_path(self, ride: Any) -> bool:
        return ride.route_polyline is not None

    def store_path(self, ride: Any, polyline: str, points: int) -> None:
        ride.route_polyline, ride.path_points = polyline, points


@dataclass
class MemoryOffer:
    ride_id: uuid.UUID
    driver_id: uuid.UUID
    expires_at: datetime
    status: str = "pending"
    wave: int = 1
    id: uuid.UUID = field(default_factory=uuid.uuid4)


class MemoryOffers:
    def __init__(self) -> None:
        self.offers: list[MemoryOffer] = []

    def grant(self, ride_id: uuid.UUID, driver_id: uuid.UUID, expires_at: datetime) -> None:
        self.offers.append(MemoryOffer(ride_id, driver_id, expires_at))

    def open_offer(self, ride_id: uuid.UUID, driver_id: uuid.UUID, now: datetime) -> Any:
        return next(
            (
                o
                for o in self.offers
                if o.ride_id == ride_id
                and o.driver_id == driver_id
                and o.status == "pending"
                and o.expires_at > now
            ),
            None,
        )

    def ever_offered(self, ride_id: uuid.UUID, driver_id: uuid.UUID) -> bool:
        return any(o.ride_id == ride_id and o.driver_id == driver_id for o in self.offers)

    def take(self, ride: RideState, driver_id: uuid.UUID, now: datetime) -> None:
        from domain.errors import Conflict

        offer = self.open_offer(ride.id, driver_id, now)
        if offer is None:
            raise Conflict("you hold no offer for this ride", code="no_offer")
        offer.status = "accepted"
        self.withdraw_all(ride, "taken", now)  # as the SQL book: the others are withdrawn

    def decline(self, ride: RideState, driver_id: uuid.UUID, now: datetime) -> None:
        offer = self.open_offer(ride.id, driver_id, now)
        if offer is not None:
            offer.status = "declined"

    def withdraw_all(self, ride: RideState, reason: str, now: datetime) -> None:
        for o in self.offers:
            if o.ride_id == ride.id and o.status == "pending":
                o.status = "withdrawn"


@dataclass
class PaymentRow:
    ride_id: uuid.UUID
    passenger_id: uuid.UUID
    kind: str
    amount: int
    currency: str = "usd"
    payment_method_id: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    status: str = "pending"
    amount_received: int = 0
    amount_refunded: int = 0
    stripe_payment_intent_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    capture_before: datetime | None = None
    risk_level: str | None = None
    risk_score: int | None = None
    updated_at: datetime | None = None


@dataclass
class RefundRow:
    payment_id: uuid.UUID
    amount: int
    currency: str = "usd"
    reason: str = "requested_by_customer"
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    status: str = "pending"
    stripe_refund_id: str | None = None
    updated_at: datetime | None = None


class MemoryPayments:
    def __init__(self) -> None:
        self.holds: list[tuple[uuid.UUID, int]] = []
        self.owed: dict[uuid.UUID, int] = {}
        self.customers: dict[uuid.UUID, str] = {}
        self.rows: list[PaymentRow] = []
        self.refunds: list[RefundRow] = []
        self._payments = Handed("status", "amount_received")
        self._refunds = Handed("status")

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._payments.changed()

    def changed_refunds(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._refunds.changed()

    def outstanding(self, passenger_id: uuid.UUID) -> int:
        return self.owed.get(passenger_id, 0)

    def can_charge(self, passenger_id: uuid.UUID) -> bool:
        return passenger_id in self.customers

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        self.holds.append((ride.id, amount))
        self.add(ride, "authorization", amount, payment_method_id)

    def of_ride(self, ride_id: uuid.UUID) -> list[Any]:
        return self._payments.all_out([p for p in self.rows if p.ride_id == ride_id])

    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Any:
        return self._payments.out(next((p for p in self.rows if p.id == payment_id), None))

    def refunds_not_failed(self, payment_id: uuid.UUID) -> int:
        return sum(
            r.amount for r in self.refunds if r.payment_id == payment_id and r.status != "failed"
        )

    def add_refund(self, payment: Any, amount: int, reason: str, requested_by: uuid.UUID) -> Any:
        row = RefundRow(payment.id, amount, payment.currency, reason)
        self.refunds.append(row)
        return self._refunds.out(row)

    def of_kind(self, ride_id: uuid.UUID, kind: str) -> Any:
        found = next((p for p in self.rows if p.ride_id == ride_id and p.kind == kind), None)
        return self._payments.out(found)

    def add(self, ride: Any, kind: str, amount: int, payment_method_id: str | None) -> Any:
        row = PaymentRow(ride.id, ride.passenger_id, kind, amount, ride.currency, payment_method_id)
        self.rows.append(row)
        return self._payments.out(row)

    def by_intent(self, intent_id: str) -> Any:
        found = next((p for p in self.rows if p.stripe_payment_intent_id == intent_id), None)
        return self._payments.out(found)

    def refund(self, refund_id: uuid.UUID) -> Any:
        return self._refunds.out(next((r for r in self.refunds if r.id == refund_id), None))

    def refund_by_stripe_id(self, stripe_refund_id: str) -> Any:
        found = next((r for r in self.refunds if r.stripe_refund_id == stripe_refund_id), None)
        return self._refunds.out(found)

    def customer_of(self, user_id: uuid.UUID) -> str | None:
        return self.customers.get(user_id)

    def stuck(self, before: datetime, limit: int) -> list[Any]:
        old = [p for p in self.rows if p.status == "pending" and (p.updated_at or before) < before]
        return self._payments.all_out(old[:limit])

    def stuck_refunds(self, before: datetime, limit: int) -> list[Any]:
        old = [
            r for r in self.refunds if r.status == "pending" and (r.updated_at or before) < before
        ]
        return self._refunds.all_out(old[:limit])

    def save(self, row: Any) -> None:
        pass

    def standing_holds(
        self, unchanged_since: datetime, lapsing_by: datetime, limit: int
    ) -> list[StandingHold]:
        return [
            StandingHold(p.ride_id, self.ride_status(p.ride_id), p.capture_before)
            for p in self.rows
            if p.kind == "authorization"
            and p.status == "requires_capture"
            and (
                (p.updated_at is not None and p.updated_at < unchanged_since)
                or (p.capture_before is not None and p.capture_before < lapsing_by)
            )
        ][:limit]

    ride_status: Any = None  # set by the unit of work: a ride's status by its id


class FakeCardGateway:
    """Stripe as the workers see it, in memory: each call keyed as the real gateway keys
    it, so a repeated call answers what the first did and moves nothing twice. `decline`
    makes the next charge fail with that exception; `refuse_capture` the next capture."""

    def __init__(self, card: str | None = "pm_card_visa") -> None:
        self.card = card
        self.intents: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []  # (what, idempotency key)
        self.decline: Exception | None = None
        self.refuse_capture: Exception | None = None
        self.refuse_refund: Exception | None = None
        self.refund_states: dict[str, str] = {}
        self.refuse_transfer: Exception | None = None
        self.transfers: dict[str, tuple[str, int, str]] = {}  # key: (destination, amount, cur)

    def _once(self, key: str, what: str, make: Any) -> Any:
        if key not in {k for _, k in self.calls}:
            self.calls.append((what, key))
            self.intents[key] = make()
        return self.intents[key]

    def charging_card(self, customer: str) -> str | None:
        return self.card

    def charge_off_session(self, *, payment_id: uuid.UUID, ride_id: uuid.UUID, amount: int,
                           currency: str, customer: str, payment_method: str, hold: bool,
                           purpose: str) -> Any:  # fmt: skip
        if self.decline is not None:
            exc, self.decline = self.decline, None
            raise exc
        status = "requires_capture" if hold else "succeeded"
        intent = self._once(
            f"payment-{payment_id}",
            "charge",
            lambda: SimpleNamespace(
                id=f"pi_{payment_id.hex[:12]}",
                status=status,
                amount=amount,
                amount_received=0 if hold else amount,
            ),  # fmt: skip
        )
        self.intents[intent.id] = intent
        return intent

    def capture(self, intent_id: str, ride_id: uuid.UUID, amount: int) -> Any:
        if self.refuse_capture is not None:
            exc, self.refuse_capture = self.refuse_capture, None
            raise exc
        intent = self.intents[intent_id]
        self._once(f"ride-{ride_id}-capture", "capture", lambda: None)
        intent.status, intent.amount_received = "succeeded", amount
        return intent

    def release(self, intent_id: str, ride_id: uuid.UUID) -> Any:
        intent = self.intents[intent_id]
        self._once(f"ride-{ride_id}-release", "release", lambda: None)
        intent.status = "canceled"
        return intent

    def intent(self, intent_id: str) -> Any:
        return self.intents[intent_id]

    def refund(self, refund_id: uuid.UUID, intent_id: str, amount: int, reason: str) -> Any:
        if self.refuse_refund is not None:
            exc, self.refuse_refund = self.refuse_refund, None
            raise exc
        made = self._once(
            f"refund-{refund_id}",
            "refund",
            lambda: SimpleNamespace(id=f"re_{refund_id.hex[:12]}", status="succeeded"),
        )
        self.refund_states.setdefault(made.id, "succeeded")
        return made

    def refund_state(self, stripe_refund_id: str) -> str:
        return self.refund_states[stripe_refund_id]

    def transfer(self, *, key: str, statement_id: uuid.UUID, driver_id: uuid.UUID,
                 destination: str, amount: int, currency: str) -> str:  # fmt: skip
        if self.refuse_transfer is not None:
            exc, self.refuse_transfer = self.refuse_transfer, None
            raise exc
        self.transfers.setdefault(key, (destination, amount, currency))
        return f"tr_{key}"


class MemoryWebhooks:
    def __init__(self) -> None:
        self.events: dict[str, Any] = {}

    def add(
        self, event_id: str, payload: dict[str, Any], received_at: datetime = datetime.min
    ) -> None:
        self.events[event_id] = SimpleNamespace(
            id=event_id, payload=payload, processed_at=None, result=None, received_at=received_at
        )

    def get(self, event_id: str) -> Any:
        return self.events.get(event_id)

    def save(self, event: Any) -> None:
        pass

    def unprocessed(self, received_before: datetime, limit: int) -> list[str]:
        return [
            e.id
            for e in self.events.values()
            if e.processed_at is None and e.received_at < received_before
        ][:limit]


class MemoryPushLog:
    def __init__(self) -> None:
        self.logged: dict[tuple[uuid.UUID, str], Any] = {}
        self.new: list[tuple[uuid.UUID, str]] = []

    def log(self, pushes: list[Any]) -> None:
        for p in pushes:  # once per user and key, as the log's unique key keeps it
            if (p.user_id, p.key) not in self.logged:
                self.logged[(p.user_id, p.key)] = p
                self.new.append((uuid.uuid5(p.user_id, p.key), str(p.kind)))

    def just_logged(self) -> list[tuple[uuid.UUID, str]]:
        new, self.new = self.new, []
        return new

    @property
    def kinds(self) -> list[str]:
        return [str(p.kind) for p in self.logged.values()]


class MemoryRiderAlerts:
    def __init__(self) -> None:
        self.told: list[tuple[uuid.UUID, str, dict[str, Any]]] = []

    def payment_problem(self, passenger_id: uuid.UUID, kind: str, event: dict[str, Any]) -> None:
        self.told.append((passenger_id, kind, event))


class MemoryLedger:
    def __init__(self) -> None:
        self.entries: dict[str, JournalEntry] = {}

    def post(self, entry: JournalEntry) -> bool:
        if entry.key in self.entries:
            return False
        self.entries[entry.key] = entry
        return True

    def entry_amount(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return (
            None if entry is None else sum(line.amount for line in entry.lines if line.amount > 0)
        )


class MemoryJobs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.completed: list[str | None] = []
        self.stale: list[tuple[str, dict[str, Any]]] = []  # written, never completed

    def complete(self, job_id: str | None) -> None:
        self.completed.append(job_id)

    def resend_stale(self, older_than_s: float) -> int:
        self.sent.extend(self.stale)
        return len(self.stale)

    def enqueue(self, task: str, **kwargs: Any) -> None:
        self.sent.append((task, kwargs))

    def run_here(self, task: str, work: Any, **kwargs: Any) -> None:
        """As if committed at once: the work is done here and the job recorded."""
        work()
        self.sent.append((task, kwargs))

    @property
    def tasks(self) -> list[str]:
        return [task for task, _ in self.sent]


class MemoryLive:
    def __init__(self) -> None:
        self.published: list[tuple[uuid.UUID, str]] = []

    def ride_changed(self, ride: RideState, event: RideEvent) -> Any:
        return lambda: self.published.append((ride.id, str(event.status)))

    def republish(self, ride: RideState, status: str, at: datetime) -> bool:
        if (ride.id, status) in self.published:
            return False
        self.published.append((ride.id, status))
        return True


class MemoryVelocity:
    """Counts per (what, subject) in one window that never resets."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, uuid.UUID], int] = {}

    def hit(self, what: str, subject: uuid.UUID, limit: int, window_s: int) -> int:
        n = self.counts[(what, subject)] = self.counts.get((what, subject), 0) + 1
        return 0 if n <= limit else window_s

    def count(self, what: str, subject: uuid.UUID, window_s: int) -> int:
        return self.counts.get((what, subject), 0)


class MemoryCards:
    """The rider's cards at the provider: `saved[customer]`, the first one the default."""

    def __init__(self) -> None:
        self.customers: dict[uuid.UUID, str] = {}
        self.saved_cards: dict[str, list[Card]] = {}
        self.intents: dict[str, IntentInfo] = {}
        self.confirmed: list[str] = []

    def customer(self, user_id: uuid.UUID) -> str:
        return self.customers.setdefault(user_id, f"cus_{user_id.hex[:8]}")

    def setup_intent(self, customer: str, user_id: uuid.UUID) -> SetupIntentInfo:
        return SetupIntentInfo(f"seti_{customer}", f"seti_{customer}_secret", customer)

    def saved(self, customer: str) -> list[Card]:
        return list(self.saved_cards.get(customer, []))

    def owned(self, customer: str, payment_method_id: str) -> Card:
        found = next((c for c in self.saved(customer) if c.id == payment_method_id), None)
        if found is None:
            raise PaymentObjectMissing("no such card", code="payment_method_not_found")
        return found

    def detach(self, customer: str, payment_method_id: str) -> None:
        self.saved_cards[customer] = [c for c in self.saved(customer) if c.id != payment_method_id]

    def make_default(self, customer: str, payment_method_id: str) -> None:
        cards = self.saved(customer)
        cards.sort(key=lambda c: c.id != payment_method_id)
        self.saved_cards[customer] = cards

    def intent(self, intent_id: str) -> IntentInfo:
        return self.intents[intent_id]

    def confirm(self, intent_id: str, payment_id: uuid.UUID) -> Any:
        self.confirmed.append(intent_id)
        info = self.intents[intent_id]
        return SimpleNamespace(id=intent_id, status="succeeded", amount_received=info.amount)


class MemoryDevices:
    def __init__(self) -> None:
        self.tokens: dict[str, tuple[uuid.UUID, str]] = {}  # token: (user, platform)
        self.wants_promotions: set[uuid.UUID] = set()
        self.notes: list[Any] = []  # the notification log, newest last

    def register(self, user_id: uuid.UUID, token: str, platform: str) -> None:
        self.tokens[token] = (user_id, platform)

    def unregister(self, user_id: uuid.UUID, token: str) -> bool:
        if self.tokens.get(token, (None, ""))[0] != user_id:
            return False
        del self.tokens[token]
        return True

    def set_promotions(self, user_id: uuid.UUID, wanted: bool) -> None:
        (self.wants_promotions.add if wanted else self.wants_promotions.discard)(user_id)


class NoPaths:
    """Recorded paths: none unless a test puts points in."""

    def __init__(self) -> None:
        self.recorded: dict[uuid.UUID, list[PathPoint]] = {}

    def travelled_m(self, ride_id: uuid.UUID, since: datetime | None = None) -> int | None:
        return None

    def points(self, ride_id: uuid.UUID, since: datetime | None = None) -> list[PathPoint]:
        start = since.timestamp() if since else 0.0
        return [p for p in self.recorded.get(ride_id, []) if p.t >= start]


class MemoryDispatching:
    """The dispatcher's side over the same offers as `MemoryOffers` (one list)."""

    def __init__(self, rides: MemoryRides, offers: MemoryOffers) -> None:
        self.rides, self.book = rides, offers
        self.told: list[tuple[uuid.UUID, str]] = []  # (driver, "offer" / closing status)

    def ride(self, ride_id: uuid.UUID) -> Any:
        return self.rides.rows.get(ride_id)

    def pending(self, ride_id: uuid.UUID) -> list[MemoryOffer]:
        return [o for o in self.book.offers if o.ride_id == ride_id and o.status == "pending"]

    def close(self, offer: Any, status: str, now: datetime) -> None:
        offer.status = str(status)
        self.told.append((offer.driver_id, str(status)))

    def offered_drivers(self, ride_id: uuid.UUID) -> set[str]:
        return {str(o.driver_id) for o in self.book.offers if o.ride_id == ride_id}

    def offer(self, ride: Any, candidate: Any, wave: int, now: datetime, ttl_s: float) -> Any:
        driver = uuid.UUID(candidate.driver_id)
        if any(o.driver_id == driver and o.status == "pending" for o in self.book.offers):
            return None  # one pending offer per driver
        offer = MemoryOffer(ride.id, driver, now + timedelta(seconds=ttl_s), wave=wave)
        self.book.offers.append(offer)
        self.told.append((driver, "offer"))
        return offer

    def save(self, ride: Any) -> None:
        pass

    def claim_due(self, now: datetime, lease_s: float) -> list[uuid.UUID]:
        due = [
            r
            for r in self.rides.rows.values()
            if r.status == "requested" and r.dispatch_deadline and r.dispatch_deadline <= now
        ]
        for r in due:
            r.dispatch_deadline = now + timedelta(seconds=lease_s)
        return [r.id for r in due]


class MemoryDrivers:
    def __init__(self) -> None:
        self.around: list[Any] = []  # the candidates every search finds
        self.seen: dict[uuid.UUID, datetime] = {}
        self.forgotten_at: list[datetime] = []

    def near(self, lat: float, lng: float, radius_m: float) -> list[Any]:
        return [c for c in self.around if c.distance_m <= radius_m]

    def last_seen(self, driver_id: uuid.UUID) -> datetime | None:
        return self.seen.get(driver_id)

    def forget_silent(self, now: datetime) -> int:
        self.forgotten_at.append(now)
        return 0


@dataclass
class StatementRow:
    driver_id: uuid.UUID
    period: str
    currency: str
    earned: int
    cash_held: int
    net: int
    rides: int
    carried_in: int
    payout_amount: int
    carry_out: int
    payout_status: str
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    payout_attempts: int = 0
    payout_tried_at: datetime | None = None
    payout_error: str | None = None
    transfer_id: str | None = None
    paid_at: datetime | None = None


class MemoryStatements:
    def __init__(self, ledger: MemoryLedger) -> None:
        self.ledger = ledger
        self.rows: list[StatementRow] = []
        self._handed = Handed("payout_status")
        self.posted_at: dict[str, datetime] = {}  # entry key: when (default: every day)

    def driver_lines(self, start: datetime, end: datetime) -> list[tuple[str, str, int, Any]]:
        return [
            (line.account, line.currency, line.amount, e.ride_id)
            for key, e in self.ledger.entries.items()
            if e.kind != "payout" and start <= self.posted_at.get(key, start) < end
            for line in e.lines
            if line.account.startswith(("driver_payable:", "cash_held_by_driver:"))
        ]

    def carried_before(self, driver_id: uuid.UUID, currency: str, period: str) -> int:
        before = sorted(
            (r for r in self.rows if (r.driver_id, r.currency) == (driver_id, currency)
             and r.period < period),
            key=lambda r: r.period,
        )  # fmt: skip
        return before[-1].carry_out if before else 0

    def add_once(self, statement: Any) -> bool:
        key = (statement.driver_id, statement.period, statement.currency)
        if any((r.driver_id, r.period, r.currency) == key for r in self.rows):
            return False
        self.rows.append(StatementRow(**asdict(statement)))
        return True

    def due(self, tried_before: datetime, limit: int) -> list[uuid.UUID]:
        return [
            r.id
            for r in self.rows
            if r.payout_status in ("pending", "payable")
            and (r.payout_tried_at is None or r.payout_tried_at < tried_before)
        ][:limit]

    def get(self, statement_id: uuid.UUID) -> Any:
        return self._handed.out(next((r for r in self.rows if r.id == statement_id), None))

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._handed.changed()

    def save(self, statement: Any) -> None:
        pass


class MemoryPayoutAccounts:
    def __init__(self) -> None:
        self.accounts: dict[uuid.UUID, str] = {}

    def onboarding_link(self, driver_id: uuid.UUID) -> str:
        return f"https://connect.example/{driver_id}"

    def account_of(self, driver_id: uuid.UUID) -> str | None:
        return self.accounts.get(driver_id)


class MemoryRatings:
    def __init__(self) -> None:
        self.roles: dict[uuid.UUID, str] = {}
        self.rows: dict[uuid.UUID, Any] = {}  # rating id: rating
        self.summaries: dict[uuid.UUID, tuple[str, Any]] = {}
        self.alerts: dict[uuid.UUID, Any] = {}  # open ones
        self.added: list[Any] = []

    def get(self, rating_id: uuid.UUID) -> Any:
        return self.rows.get(rating_id)

    def add(self, new: Any) -> Any:
        if any((r.ride_id, r.rater_id) == (new.ride_id, new.rater_id) for r in self.rows.values()):
            from domain.errors import Conflict

            raise Conflict("you rated this ride already", code="already_rated")
        rating = SimpleNamespace(id=uuid.uuid4(), **asdict(new))
        self.rows[rating.id] = rating
        self.added.append(rating)
        return rating

    def just_added(self) -> list[Any]:
        added, self.added = self.added, []
        return added

    def stars_of(self, user_id: uuid.UUID) -> tuple[str, list[int]] | None:
        if user_id not in self.roles:
            return None
        mine = [r for r in self.rows.values() if r.ratee_id == user_id]
        mine.sort(key=lambda r: r.created_at, reverse=True)
        return self.roles[user_id], [r.stars for r in mine]

    def save_summary(self, user_id: uuid.UUID, side: str, summary: Any, now: datetime) -> None:
        self.summaries[user_id] = (side, summary)

    def follow_alert(self, user_id: uuid.UUID, summary: Any, now: datetime) -> None:
        if summary is None:
            self.alerts.pop(user_id, None)
        else:
            self.alerts[user_id] = summary


class MemoryBroadcasts:
    def __init__(self, batches: int = 1) -> None:
        self.batches_left: dict[uuid.UUID, int] = {}
        self.batches = batches

    def create(self, title: str, body: str, created_by: uuid.UUID) -> uuid.UUID:
        broadcast_id = uuid.uuid4()
        self.batches_left[broadcast_id] = self.batches
        return broadcast_id

    def next_batch(self, broadcast_id: uuid.UUID) -> tuple[list[Any], bool]:
        self.batches_left[broadcast_id] = max(0, self.batches_left[broadcast_id] - 1)
        user = uuid.uuid4()  # one opted-in user per batch
        push = promotion_push(user, broadcast_id, "t", "b")
        return [push], self.batches_left[broadcast_id] == 0


class MemoryDeliveries:
    """`PushDeliveries` as FCM and the delivery rows would answer: `answers` is what FCM
    says to each token (default: it took it); a claimed delivery is never sent again."""

    def __init__(self) -> None:
        self.messages: dict[uuid.UUID, tuple[Any, list[str]]] = {}
        self.answers: dict[str, ComeBack | None] = {}
        self.reachable = True
        self.status: dict[tuple[uuid.UUID, str], str] = {}  # (notification, token)
        self.sent: list[tuple[uuid.UUID, str]] = []
        self.settled: list[tuple[uuid.UUID, bool]] = []

    def message(self, notification_id: uuid.UUID) -> tuple[Any, list[str]] | None:
        return self.messages.get(notification_id)

    def ready(self) -> bool:
        return self.reachable

    def claim(self, notification_id: uuid.UUID, token: str) -> uuid.UUID | None:
        key = (notification_id, token)
        if self.status.setdefault(key, "pending") != "pending":
            return None
        self.status[key] = "sending"
        return uuid.uuid5(notification_id, token)

    def send(self, delivery_id: uuid.UUID, token: str, push: Any) -> ComeBack | None:
        key = next(k for k in self.status if uuid.uuid5(k[0], k[1]) == delivery_id)
        answer = self.answers.get(token)
        self.status[key] = "pending" if answer is not None else "sent"
        if answer is None:
            self.sent.append(key)
        return answer

    def settle(self, notification_id: uuid.UUID, *, waiting: bool) -> None:
        self.settled.append((notification_id, waiting))


class FakeViews:
    """The `Views` port over a fake unit of work's stores: what a page reads is what the
    use cases wrote there, as the SQL views read the tables the unit of work writes."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow

    def overview(self, since_h: int, active_limit: int) -> dict[str, Any]:
        return {"since_h": since_h, "active_limit": active_limit}

    def _lines(self) -> list[tuple[JournalEntry, Any]]:
        return [(e, line) for e in self.uow.ledger.entries.values() for line in e.lines]

    def balances_of(self, accounts: list[str]) -> dict[tuple[str, str], int]:
        from domain.ledger import balances

        lines = [line for _e, line in self._lines()]
        return {k: v for k, v in balances(lines).items() if k[0] in accounts}

    def postings(self, accounts: list[str], before_line: int | None, limit: int) -> list[Posting]:
        lines = [
            Posting(n, e.key, e.kind, line.account, line.amount, line.currency, e.ride_id, T0)
            for n, (e, line) in enumerate(self._lines(), start=1)
            if line.account in accounts
        ]
        newest = [p for p in reversed(lines) if before_line is None or p.line_id < before_line]
        return newest[:limit]

    def statements_of(self, driver_id: uuid.UUID, before: Any, limit: int) -> list[Any]:
        return [r for r in self.uow.statements.rows if r.driver_id == driver_id][:limit]

    def ratings_received(self, user_id: uuid.UUID, before: Any, limit: int) -> list[Any]:
        mine = [r for r in self.uow.ratings.rows.values() if r.ratee_id == user_id]
        return sorted(mine, key=lambda r: r.created_at, reverse=True)[:limit]

    def rating_summary(self, user_id: uuid.UUID) -> Any:
        found = self.uow.ratings.summaries.get(user_id)
        if found is None:
            return None
        side, s = found
        return SimpleNamespace(
            side=side,
            average=s.average,
            count=s.count,
            distribution={str(k): v for k, v in s.distribution.items()},
            smoothed=s.smoothed,
            raw_average=s.raw_average,
        )

    def open_rating_alerts(self, before: Any, limit: int) -> list[Any]:
        alerts = self.uow.ratings.alerts.items()
        return [SimpleNamespace(user_id=u, summary=s) for u, s in alerts][:limit]

    def notifications_of(self, user_id: uuid.UUID, before: Any, limit: int) -> list[Any]:
        return [n for n in reversed(self.uow.devices.notes) if n.user_id == user_id][:limit]

    def wants_promotions(self, user_id: uuid.UUID) -> bool:
        return user_id in self.uow.devices.wants_promotions

    def broadcast_progress(self, broadcast_id: uuid.UUID) -> BroadcastProgress:
        left = self.uow.broadcasts.batches_left
        if broadcast_id not in left:
            raise NotFound("broadcast not found", code="broadcast_not_found")
        return BroadcastProgress(broadcast_id, left[broadcast_id] == 0, 0, 0, 0)


@dataclass
class FakeUnitOfWork:
    rides: MemoryRides = field(default_factory=MemoryRides)
    offers: MemoryOffers = field(default_factory=MemoryOffers)
    payments: MemoryPayments = field(default_factory=MemoryPayments)
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    jobs: MemoryJobs = field(default_factory=MemoryJobs)
    live: MemoryLive = field(default_factory=MemoryLive)
    velocity: MemoryVelocity = field(default_factory=MemoryVelocity)
    paths: NoPaths = field(default_factory=NoPaths)
    cards: MemoryCards = field(default_factory=MemoryCards)
    statements: Any = None
    payout_accounts: MemoryPayoutAccounts = field(default_factory=MemoryPayoutAccounts)
    ratings: MemoryRatings = field(default_factory=MemoryRatings)
    devices: MemoryDevices = field(default_factory=MemoryDevices)
    broadcasts: MemoryBroadcasts = field(default_factory=MemoryBroadcasts)
    card_gateway: FakeCardGateway = field(default_factory=FakeCardGateway)
    webhooks: MemoryWebhooks = field(default_factory=MemoryWebhooks)
    pushes: MemoryPushLog = field(default_factory=MemoryPushLog)
    rider_alerts: MemoryRiderAlerts = field(default_factory=MemoryRiderAlerts)
    drivers: MemoryDrivers = field(default_factory=MemoryDrivers)
    dispatching: Any = None

    def commit(self) -> None:
        """What the SQL unit of work does before its commit: every changed ride recorded."""
        collect(self)

    def __post_init__(self) -> None:
        self.dispatching = MemoryDispatching(self.rides, self.offers)
        self.statements = MemoryStatements(self.ledger)
        self.payments.ride_status = lambda ride_id: self.rides.rows[ride_id].status
