"""In-memory fakes of the use cases' ports: a whole unit of work without a database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from domain.ledger import JournalEntry
from domain.rides import DRIVER_ACTIVE, OPEN, RideEvent, RideState
from tests.unit.domain.test_rides import FakeRide


class MemoryRides:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, FakeRide] = {}

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

    def create(self, **fields: Any) -> RideState:
        fields.pop("payment_method_id", None)
        ride = FakeRide(**fields)
        self.rows[ride.id] = ride
        return ride

    def save(self, ride: RideState) -> None:
        pass

    def page(self, query: Any) -> list[RideState]:
        return sorted(self.rows.values(), key=lambda r: r.created_at, reverse=True)


@dataclass
class MemoryOffer:
    ride_id: uuid.UUID
    driver_id: uuid.UUID
    expires_at: datetime
    status: str = "pending"


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

    def outstanding(self, passenger_id: uuid.UUID) -> int:
        return self.owed.get(passenger_id, 0)

    def can_charge(self, passenger_id: uuid.UUID) -> bool:
        return passenger_id in self.customers

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        self.holds.append((ride.id, amount))
        self.add(ride, "authorization", amount, payment_method_id)

    def of_ride(self, ride_id: uuid.UUID) -> list[Any]:
        return [p for p in self.rows if p.ride_id == ride_id]

    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Any:
        return next((p for p in self.rows if p.id == payment_id), None)

    def refunds_not_failed(self, payment_id: uuid.UUID) -> int:
        return sum(
            r.amount for r in self.refunds if r.payment_id == payment_id and r.status != "failed"
        )

    def add_refund(self, payment: Any, amount: int, reason: str, requested_by: uuid.UUID) -> Any:
        row = RefundRow(payment.id, amount, payment.currency, reason)
        self.refunds.append(row)
        return row

    def of_kind(self, ride_id: uuid.UUID, kind: str) -> Any:
        return next((p for p in self.rows if p.ride_id == ride_id and p.kind == kind), None)

    def add(self, ride: Any, kind: str, amount: int, payment_method_id: str | None) -> Any:
        row = PaymentRow(ride.id, ride.passenger_id, kind, amount, ride.currency, payment_method_id)
        self.rows.append(row)
        return row

    def by_intent(self, intent_id: str) -> Any:
        return next((p for p in self.rows if p.stripe_payment_intent_id == intent_id), None)

    def refund(self, refund_id: uuid.UUID) -> Any:
        return next((r for r in self.refunds if r.id == refund_id), None)

    def refund_by_stripe_id(self, stripe_refund_id: str) -> Any:
        return next((r for r in self.refunds if r.stripe_refund_id == stripe_refund_id), None)

    def customer_of(self, user_id: uuid.UUID) -> str | None:
        return self.customers.get(user_id)

    def stuck(self, before: datetime, limit: int) -> list[Any]:
        old = [p for p in self.rows if p.status == "pending" and (p.updated_at or before) < before]
        return old[:limit]

    def stuck_refunds(self, before: datetime, limit: int) -> list[Any]:
        old = [
            r for r in self.refunds if r.status == "pending" and (r.updated_at or before) < before
        ]
        return old[:limit]

    def save(self, row: Any) -> None:
        pass


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


class MemoryWebhooks:
    def __init__(self) -> None:
        self.events: dict[str, Any] = {}

    def add(self, event_id: str, payload: dict[str, Any]) -> None:
        self.events[event_id] = SimpleNamespace(
            id=event_id, payload=payload, processed_at=None, result=None
        )

    def get(self, event_id: str) -> Any:
        return self.events.get(event_id)

    def save(self, event: Any) -> None:
        pass


class MemoryPushLog:
    def __init__(self) -> None:
        self.logged: dict[tuple[uuid.UUID, str], Any] = {}

    def log(self, pushes: list[Any]) -> None:
        for p in pushes:  # once per user and key, as the log's unique key keeps it
            self.logged.setdefault((p.user_id, p.key), p)

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

    def balances_of(self, accounts: list[str]) -> dict[tuple[str, str], int]:
        from domain.ledger import balances

        lines = [line for e in self.entries.values() for line in e.lines]
        return {k: v for k, v in balances(lines).items() if k[0] in accounts}

    def entry_amount(self, key: str) -> int | None:
        entry = self.entries.get(key)
        return (
            None if entry is None else sum(line.amount for line in entry.lines if line.amount > 0)
        )


class MemoryJobs:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

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


class MemoryVelocity:
    def hit(self, what: str, subject: uuid.UUID, limit: int, window_s: int) -> int:
        return 0

    def count(self, what: str, subject: uuid.UUID, window_s: int) -> int:
        return 0


class NoPaths:
    def travelled_m(self, ride_id: uuid.UUID, since: datetime | None = None) -> int | None:
        return None


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
    cards: Any = None
    statements: Any = None
    payout_accounts: Any = None
    ops: Any = None
    ratings: Any = None
    devices: Any = None
    broadcasts: Any = None
    card_gateway: FakeCardGateway = field(default_factory=FakeCardGateway)
    webhooks: MemoryWebhooks = field(default_factory=MemoryWebhooks)
    pushes: MemoryPushLog = field(default_factory=MemoryPushLog)
    rider_alerts: MemoryRiderAlerts = field(default_factory=MemoryRiderAlerts)
