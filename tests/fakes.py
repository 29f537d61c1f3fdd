"""In-memory fakes of the use cases' ports: a whole unit of work without a database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
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


class MemoryPayments:
    def __init__(self) -> None:
        self.holds: list[tuple[uuid.UUID, int]] = []
        self.owed: dict[uuid.UUID, int] = {}
        self.customers: set[uuid.UUID] = set()

    def outstanding(self, passenger_id: uuid.UUID) -> int:
        return self.owed.get(passenger_id, 0)

    def can_charge(self, passenger_id: uuid.UUID) -> bool:
        return passenger_id in self.customers

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        self.holds.append((ride.id, amount))

    def of_ride(self, ride_id: uuid.UUID) -> list[Any]:
        return []

    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Any:
        return None

    def refunds_not_failed(self, payment_id: uuid.UUID) -> int:
        return 0

    def add_refund(self, payment: Any, amount: int, reason: str, requested_by: uuid.UUID) -> Any:
        raise NotImplementedError


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
