"""Card payments in SQL (the `PaymentBook` port), mirroring Stripe's PaymentIntents onto our
rows, and the `Cards` port over the Stripe gateway."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, func, select

from domain.payments import OWED, PaymentKind, PaymentStatus, RefundStatus
from domain.payments import apply_intent as domain_apply_intent
from domain.rides import RideState
from domain.usecases.follow_ups import Handed
from domain.usecases.ports import Card, IntentInfo, SetupIntentInfo, StandingHold
from infra.db import after_commit, end_reads, utcnow
from infra.live.keys import user_stream
from infra.live.streams import Streams
from infra.models import Payment, Refund, Ride, User
from infra.ratelimit import RedisVelocity
from infra.redis import get_sync_redis
from infra.stripe_gateway import StripeGateway


class SqlPaymentBook:
    """`PaymentBook`: every payment and refund it hands out is remembered with its state
    then, for the unit of work to follow up what changed (`card_payments.collect`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._payments = Handed("status", "amount_received")
        self._refunds = Handed("status")

    def changed(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._payments.changed()

    def changed_refunds(self) -> list[tuple[Any, dict[str, Any]]]:
        return self._refunds.changed()

    def outstanding(self, passenger_id: uuid.UUID) -> int:
        total = self.session.exec(
            select(func.coalesce(func.sum(Payment.amount - Payment.amount_received), 0)).where(
                Payment.passenger_id == passenger_id,
                col(Payment.status).in_(OWED),
                Payment.kind == PaymentKind.EXTRA_CHARGE,
            )
        ).one()
        return int(total)

    def can_charge(self, passenger_id: uuid.UUID) -> bool:
        user = self.session.get(User, passenger_id)
        return bool(user and user.stripe_customer_id)

    def hold(self, ride: RideState, amount: int, payment_method_id: str | None) -> None:
        self.add(ride, PaymentKind.AUTHORIZATION, amount, payment_method_id)

    def of_ride(self, ride_id: uuid.UUID) -> list[Payment]:
        return self._payments.all_out(payments_of_ride(self.session, ride_id))

    def get(self, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment | None:
        stmt = select(Payment).where(Payment.id == payment_id)
        if for_update:
            stmt = stmt.with_for_update()
        return self._payments.out(self.session.exec(stmt).first())

    def refunds_not_failed(self, payment_id: uuid.UUID) -> int:
        total = self.session.exec(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == payment_id, Refund.status != RefundStatus.FAILED
            )
        ).one()
        return int(total)

    def of_kind(self, ride_id: uuid.UUID, kind: str) -> Payment | None:
        return self._payments.out(payment_of(self.session, ride_id, PaymentKind(kind)))

    def add(
        self, ride: RideState, kind: str, amount: int, payment_method_id: str | None
    ) -> Payment:
        row = new_payment(self.session, ride, PaymentKind(kind), amount, payment_method_id)
        return self._payments.out(row)

    def by_intent(self, intent_id: str) -> Payment | None:
        return self._payments.out(
            self.session.exec(
                select(Payment)
                .where(Payment.stripe_payment_intent_id == intent_id)
                .with_for_update()
            ).first()
        )

    def refund(self, refund_id: uuid.UUID) -> Refund | None:
        return self._refunds.out(
            self.session.exec(
                select(Refund).where(Refund.id == refund_id).with_for_update()
            ).first()
        )

    def refund_by_stripe_id(self, stripe_refund_id: str) -> Refund | None:
        return self._refunds.out(
            self.session.exec(
                select(Refund).where(Refund.stripe_refund_id == stripe_refund_id).with_for_update()
            ).first()
        )

    def customer_of(self, user_id: uuid.UUID) -> str | None:
        user = self.session.get(User, user_id)
        return user.stripe_customer_id if user else None

    def save(self, row: Payment | Refund) -> None:
        self.session.add(row)

    def stuck(self, before: datetime, limit: int) -> list[Payment]:
        return self._payments.all_out(
            list(
                self.session.exec(
                    select(Payment)
                    .where(
                        Payment.status == PaymentStatus.PENDING, col(Payment.updated_at) < before
                    )
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                ).all()
            )
        )

    def stuck_refunds(self, before: datetime, limit: int) -> list[Refund]:
        return self._refunds.all_out(
            list(
                self.session.exec(
                    select(Refund)
                    .where(Refund.status == RefundStatus.PENDING, col(Refund.updated_at) < before)
                    .limit(limit)
                ).all()
            )
        )

    def standing_holds(
        self, unchanged_since: datetime, lapsing_by: datetime, limit: int
    ) -> list[StandingHold]:
        rows = self.session.exec(
            select(Payment.ride_id, Ride.status, Payment.capture_before)
            .join(Ride, col(Ride.id) == col(Payment.ride_id))
            .where(
                Payment.kind == PaymentKind.AUTHORIZATION,
                Payment.status == PaymentStatus.REQUIRES_CAPTURE,
                (col(Payment.updated_at) < unchanged_since)
                | (col(Payment.capture_before) < lapsing_by),
            )
            .limit(limit)
        ).all()
        return [
            StandingHold(ride_id, status, capture_before)
            for ride_id, status, capture_before in rows
        ]

    def add_refund(
        self, payment: Payment, amount: int, reason: str, requested_by: uuid.UUID
    ) -> Refund:
        refund = Refund(
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            reason=reason,
            requested_by=requested_by,
        )
        self.session.add(refund)
        self.session.flush()
        return self._refunds.out(refund)


def new_payment(
    session: Session,
    ride: RideState,
    kind: PaymentKind,
    amount: int,
    payment_method_id: str | None,
) -> Payment:
    """A payment of the ride, pending until a worker has asked Stripe."""
    payment = Payment(
        ride_id=ride.id,
        passenger_id=ride.passenger_id,
        kind=kind,
        amount=amount,
        currency=ride.currency,
        payment_method_id=payment_method_id,
    )
    session.add(payment)
    session.flush()
    return payment


def payment_of(session: Session, ride_id: uuid.UUID, kind: PaymentKind) -> Payment | None:
    return session.exec(
        select(Payment).where(Payment.ride_id == ride_id, Payment.kind == kind).with_for_update()
    ).first()


def payments_of_ride(session: Session, ride_id: uuid.UUID) -> list[Payment]:
    return list(
        session.exec(
            select(Payment).where(Payment.ride_id == ride_id).order_by(col(Payment.created_at))
        ).all()
    )


def apply_intent(payment: Payment, intent: Any) -> None:
    """`domain.payments.apply_intent` at the database's now."""
    domain_apply_intent(payment, intent, utcnow())


class StripeCards:
    """The use cases' `Cards` port: the rider's customer and cards at Stripe."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._gateway: StripeGateway | None = None

    @property
    def gateway(self) -> StripeGateway:
        if self._gateway is None:
            self._gateway = StripeGateway()
        return self._gateway

    def customer(self, user_id: uuid.UUID) -> str:
        """Created once: the idempotency key makes a retry or a concurrent request create
        no second customer."""
        user = self.session.get(User, user_id)
        if user is None:
            from domain.errors import NotFound

            raise NotFound("account no longer exists", code="user_not_found")
        if user.stripe_customer_id:
            return user.stripe_customer_id
        email, name = user.email, user.name
        end_reads(self.session)
        made = self.gateway.create_customer(user_id, email, name)
        user = self.session.get(User, user_id)
        assert user is not None
        user.stripe_customer_id = made
        self.session.add(user)
        return made

    # Each call below is Stripe's answer to the request: no transaction waits on it.
    def setup_intent(self, customer: str, user_id: uuid.UUID) -> SetupIntentInfo:
        end_reads(self.session)
        return self.gateway.setup_intent(customer, user_id)

    def saved(self, customer: str) -> list[Card]:
        end_reads(self.session)
        return self.gateway.saved(customer)

    def owned(self, customer: str, payment_method_id: str) -> Card:
        end_reads(self.session)
        return self.gateway.owned(customer, payment_method_id)

    def detach(self, customer: str, payment_method_id: str) -> None:
        end_reads(self.session)
        self.gateway.detach(customer, payment_method_id)

    def make_default(self, customer: str, payment_method_id: str) -> None:
        end_reads(self.session)
        self.gateway.make_default(customer, payment_method_id)

    def intent(self, intent_id: str) -> IntentInfo:
        end_reads(self.session)
        return self.gateway.intent_info(intent_id)

    def confirm(self, intent_id: str, payment_id: uuid.UUID) -> Any:
        end_reads(self.session)
        return self.gateway.confirm(intent_id, payment_id)


class StripePayoutAccounts:
    """The use cases' `PayoutAccounts` port: drivers' Stripe Connect (Express) accounts."""

    def __init__(self, session: Session, public_url: str) -> None:
        self.session = session
        self.public_url = public_url.rstrip("/")  # where Stripe sends the driver back

    def account_of(self, driver_id: uuid.UUID) -> str | None:
        user = self.session.get(User, driver_id)
        return user.stripe_account_id if user is not None and user.stripe_account_id else None

    def onboarding_link(self, driver_id: uuid.UUID) -> str:
        gateway = StripeGateway()
        user = self.session.get(User, driver_id)
        if user is None:
            from domain.errors import NotFound

            raise NotFound("account no longer exists", code="user_not_found")
        account, email = user.stripe_account_id, user.email
        end_reads(self.session)  # Stripe's calls below hold no transaction
        if not account:
            # one account however often asked, even concurrently: the idempotency key
            account = gateway.create_payout_account(driver_id, email)
            user = self.session.get(User, driver_id)
            assert user is not None
            user.stripe_account_id = account
            self.session.add(user)
        base = self.public_url
        return gateway.onboarding_link(
            account,
            refresh_url=f"{base}/api/v1/payouts/onboarding?state=expired",
            return_url=f"{base}/api/v1/payouts/onboarding?state=done",
        )


class StreamRiderAlerts:
    """`RiderAlerts`: once the transaction commits, the rider's own stream hears of the
    payment to fix, and the fraud limits count it."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def payment_problem(self, passenger_id: uuid.UUID, kind: str, event: dict[str, Any]) -> None:
        def tell() -> None:
            RedisVelocity(get_sync_redis()).hit("failed_payments", passenger_id, 10**6, 3600)
            Streams(get_sync_redis()).emit(user_stream(passenger_id), kind, event)

        after_commit(self.session, tell)
