"""The SQL unit of work the use cases run in, and the context they take, for the API and
the workers alike; for the workers also what a job retries, and its record when it gives up.

`SqlUnitOfWork` binds every port to one session (one transaction, committed by
`infra.db.session_scope`): SQL repositories, the outbox, and the after-commit Redis
publisher. Nothing it enqueues or publishes happens unless the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import stripe
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from domain.errors import NotVisibleYet
from domain.geo import RouteModel
from domain.payments import ProviderUnavailable
from domain.usecases.context import Context
from domain.usecases.follow_ups import collect
from domain.usecases.ports import (
    Broadcasts,
    CardGateway,
    Cards,
    Devices,
    Dispatching,
    DriverPositions,
    JobQueue,
    Ledger,
    LivePublisher,
    OfferBook,
    PaymentBook,
    PayoutAccounts,
    PushDeliveries,
    PushLog,
    Ratings,
    RiderAlerts,
    RideRepository,
    Statements,
    TripPaths,
    Velocity,
    WebhookInbox,
)
from infra import jobs
from infra.db import read_session, session_scope, utcnow
from infra.idempotency import SqlIdempotency
from infra.jobs import OutboxJobs
from infra.ledger import SqlLedger, SqlStatements
from infra.live.drivers import RedisDriverPositions
from infra.live.publisher import RedisLivePublisher
from infra.live.trip_paths import RedisTripPaths
from infra.notifications import SqlBroadcasts, SqlDevices, SqlPushDeliveries, SqlPushLog
from infra.offers import SqlOfferBook, SqlOffers
from infra.payments import (
    SqlPaymentBook,
    StreamRiderAlerts,
    StripeCards,
    StripePayoutAccounts,
)
from infra.ratelimit import RedisVelocity
from infra.ratings import SqlRatings
from infra.redis import get_sync_redis
from infra.rides import SqlRideRepository
from infra.settings import Settings, get_settings
from infra.stripe_gateway import StripeGateway
from infra.users import SqlUsers
from infra.views import SqlViews
from infra.webhooks import SqlWebhookInbox


class SqlUnitOfWork:
    """`domain.usecases.ports.UnitOfWork` on one SQL session, plus the adapters the HTTP
    layer needs for itself (accounts, idempotency records)."""

    def __init__(
        self, session: Session, settings: Settings | None = None, *, stripe_retries: int = 2
    ) -> None:
        settings = settings or get_settings()
        self.session = session
        self.rides: RideRepository = SqlRideRepository(session)
        self.offers: OfferBook = SqlOfferBook(session)
        self.payments: PaymentBook = SqlPaymentBook(session)
        self.ledger: Ledger = SqlLedger(session)
        self.jobs: JobQueue = OutboxJobs(session)
        self.live: LivePublisher = RedisLivePublisher()
        self.velocity: Velocity = RedisVelocity(get_sync_redis())
        self.paths: TripPaths = RedisTripPaths(settings.fixes)
        self.cards: Cards = StripeCards(session)
        self.statements: Statements = SqlStatements(session)
        self.payout_accounts: PayoutAccounts = StripePayoutAccounts(session, settings.public_url)
        self.ratings: Ratings = SqlRatings(session)
        self.devices: Devices = SqlDevices(session)
        self.broadcasts: Broadcasts = SqlBroadcasts(session)
        self.webhooks: WebhookInbox = SqlWebhookInbox(session)
        self.pushes: PushLog = SqlPushLog(session)
        self.rider_alerts: RiderAlerts = StreamRiderAlerts(session)
        self.dispatching: Dispatching = SqlOffers(session)
        self._stripe_retries = stripe_retries
        self._card_gateway: CardGateway | None = None
        self._drivers: DriverPositions | None = None
        self._driver_stale_s = settings.driver_stale_s
        # adapters of the HTTP layer's own needs (not use-case ports)
        self.users = SqlUsers(session)
        self.idempotency = SqlIdempotency(session)

    @property
    def card_gateway(self) -> CardGateway:
        if self._card_gateway is None:
            self._card_gateway = StripeGateway(retries=self._stripe_retries)
        return self._card_gateway

    @property
    def drivers(self) -> DriverPositions:
        """Made when first used (only the dispatcher and the stuck-ride sweep need it)."""
        if self._drivers is None:
            self._drivers = RedisDriverPositions(get_sync_redis(), self._driver_stale_s)
        return self._drivers


@contextmanager
def sql_unit_of_work(*, stripe_retries: int = 2) -> Iterator[SqlUnitOfWork]:
    """One transaction: committed when the block ends, rolled back if it raises. Before
    the commit, each ride changed through it is recorded (`follow_ups.collect`)."""
    with session_scope() as session:
        uow = SqlUnitOfWork(session, stripe_retries=stripe_retries)
        yield uow
        collect(uow)  # every ride changed in it: saved, its follow-ups queued


@contextmanager
def read_views() -> Iterator[SqlViews]:
    """The `Views` port on a session that only reads: nothing is collected at the end,
    nothing committed."""
    with read_session() as session:
        yield SqlViews(session)


# What a job retries with backoff: a row not committed yet, the database or a provider
# away for a moment. (A card's refusal is an answer, never retried.)
TRANSIENT: tuple[type[BaseException], ...] = (
    NotVisibleYet,
    OperationalError,
    DBAPIError,
    ConnectionError,
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.APIError,
    ProviderUnavailable,
)


def job_gave_up(job_id: str | None, error: str) -> None:
    """A job's retries are spent: its outbox row says so (the sweep leaves it alone)."""
    with session_scope() as session:
        jobs.mark_failed(session, job_id, error)


def push_deliveries() -> PushDeliveries:
    return SqlPushDeliveries()


def make_context(settings: Settings | None = None, now: datetime | None = None) -> Context:
    s = settings or get_settings()
    return Context(
        now=now or utcnow(),
        fares=s.fare,
        route=RouteModel(s.detour_factor, s.average_speed_kmh),
        fraud=s.fraud,
        max_route_m=s.max_route_m,
        ratings=s.rating,
        dispatch=s.dispatch,
    )
