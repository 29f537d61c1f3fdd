"""The card flow's use cases against fakes (`tests/fakes.py`): what each asks of Stripe,
what it books in the ledger, what the rider is told, and that running it twice moves
nothing twice. The same flows against the Stripe stand-in and a real worker are in
`tests/workers/test_card_rides.py`."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from domain.errors import NotVisibleYet
from domain.payments import CardDeclined, PaymentRefused
from domain.rides import RideStatus
from domain.usecases import card_payments as card
from domain.usecases.context import Context
from tests.fakes import FakeUnitOfWork
from tests.unit.domain.test_rides import FakeRide

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CTX = Context(now=NOW)
HOLD = 1_500
T = TypeVar("T")


def _tx(use_case: Callable[..., T], uow: FakeUnitOfWork, *args: Any) -> T:
    """A use case in a transaction of its own: what it changed is collected at the commit."""
    out = use_case(uow, *args)
    uow.commit()
    return out


def _card_ride(uow: FakeUnitOfWork, **fields: object) -> FakeRide:
    ride = FakeRide(payment="card", **fields)  # type: ignore[arg-type]
    uow.rides.rows[ride.id] = ride
    uow.payments.customers[ride.passenger_id] = "cus_1"
    uow.payments.hold(ride, HOLD, None)
    return ride


def _held(uow: FakeUnitOfWork, ride: FakeRide, status: str, **fields: object) -> FakeRide:
    assert _tx(card.authorize_ride, uow, CTX, ride.id) == "requires_capture"
    ride.status = status
    for k, v in fields.items():
        setattr(ride, k, v)
    return ride


def _entries(uow: FakeUnitOfWork) -> list[str]:
    return sorted(uow.ledger.entries)


# --- authorization ---------------------------------------------------------------------
def test_the_hold_is_asked_once_however_often_the_job_runs() -> None:
    uow = FakeUnitOfWork()
    ride = _card_ride(uow)
    assert _tx(card.authorize_ride, uow, CTX, ride.id) == "requires_capture"
    assert _tx(card.authorize_ride, uow, CTX, ride.id) == "requires_capture"
    assert [what for what, _ in uow.card_gateway.calls] == ["charge"]
    auth = uow.payments.of_kind(ride.id, "authorization")
    assert (auth.status, auth.payment_method_id) == ("requires_capture", "pm_card_visa")
    assert uow.ledger.entries == {}  # a hold moves no money
    assert uow.pushes.logged == {}


def test_a_declined_card_cancels_the_ride_and_tells_the_rider() -> None:
    uow = FakeUnitOfWork()
    ride = _card_ride(uow)
    uow.card_gateway.decline = CardDeclined("no", decline_code="insufficient_funds")
    assert _tx(card.authorize_ride, uow, CTX, ride.id) == "failed"
    assert ride.status == RideStatus.CANCELLED
    assert uow.payments.of_kind(ride.id, "authorization").failure_code == "insufficient_funds"
    [(who, kind, event)] = uow.rider_alerts.told
    assert (who, kind, event["amount"]) == (ride.passenger_id, "payment_failed", HOLD)
    assert uow.pushes.kinds == ["payment_failed"]
    assert "payments.settle_ride" in uow.jobs.tasks  # the cancellation's own follow-ups


def test_a_card_needing_3ds_keeps_the_ride_and_asks_the_device() -> None:
    uow = FakeUnitOfWork()
    ride = _card_ride(uow)
    uow.card_gateway.decline = CardDeclined(
        "authenticate", code="authentication_required", intent_id="pi_3ds"
    )
    assert _tx(card.authorize_ride, uow, CTX, ride.id) == "requires_action"
    assert ride.status == RideStatus.REQUESTED
    auth = uow.payments.of_kind(ride.id, "authorization")
    assert auth.stripe_payment_intent_id == "pi_3ds"
    assert [k for _, k, _ in uow.rider_alerts.told] == ["payment_requires_action"]


def test_no_saved_card_fails_without_asking_stripe() -> None:
    uow = FakeUnitOfWork()
    ride = _card_ride(uow)
    uow.card_gateway.card = None
    assert _tx(card.authorize_ride, uow, CTX, ride.id) == "failed"
    assert uow.card_gateway.calls == []
    assert uow.payments.of_kind(ride.id, "authorization").failure_code == "no_payment_method"


def test_a_ride_not_visible_yet_comes_back_later() -> None:
    with pytest.raises(NotVisibleYet):
        card.authorize_ride(FakeUnitOfWork(), CTX, uuid.uuid4())


# --- settling --------------------------------------------------------------------------
def test_a_fare_below_the_hold_is_captured_once_and_booked_once() -> None:
    uow = FakeUnitOfWork()
    ride = _held(uow, _card_ride(uow), RideStatus.COMPLETED, fare_amount=1_200)
    assert _tx(card.settle_ride, uow, CTX, ride.id) == "due 1200, captured 1200, rest 0"
    assert _tx(card.settle_ride, uow, CTX, ride.id) == "due 1200, captured 1200, rest 0"
    assert [what for what, _ in uow.card_gateway.calls] == ["charge", "capture"]
    auth = uow.payments.of_kind(ride.id, "authorization")
    assert (auth.status, auth.amount_received) == ("succeeded", 1_200)
    assert _entries(uow) == [f"payment:{auth.id}:received"]
    assert uow.pushes.kinds == ["payment_succeeded"]


def test_a_fare_above_the_hold_captures_the_hold_and_charges_the_rest() -> None:
    uow = FakeUnitOfWork()
    ride = _held(uow, _card_ride(uow), RideStatus.COMPLETED, fare_amount=1_900)
    assert _tx(card.settle_ride, uow, CTX, ride.id) == "due 1900, captured 1500, rest 400"
    extra = uow.payments.of_kind(ride.id, "extra_charge")
    assert (extra.amount, extra.status, extra.amount_received) == (400, "succeeded", 400)
    assert _tx(card.settle_ride, uow, CTX, ride.id) == "due 1900, captured 1500, rest 400"
    assert [what for what, _ in uow.card_gateway.calls] == ["charge", "capture", "charge"]
    assert len(uow.ledger.entries) == 2  # what each payment received, once


def test_a_hold_that_cannot_be_captured_is_charged_whole_instead() -> None:
    uow = FakeUnitOfWork()
    ride = _held(uow, _card_ride(uow), RideStatus.COMPLETED, fare_amount=1_200)
    uow.card_gateway.refuse_capture = PaymentRefused("the hold lapsed", code="charge_expired")
    assert _tx(card.settle_ride, uow, CTX, ride.id) == "due 1200, capture failed"
    auth = uow.payments.of_kind(ride.id, "authorization")
    assert (auth.status, auth.failure_code) == ("failed", "charge_expired")
    extra = uow.payments.of_kind(ride.id, "extra_charge")
    assert (extra.amount, extra.status) == (1_200, "succeeded")


def test_nothing_due_releases_the_hold() -> None:
    uow = FakeUnitOfWork()
    ride = _held(uow, _card_ride(uow), RideStatus.CANCELLED, fee_amount=None)
    assert _tx(card.settle_ride, uow, CTX, ride.id) == "due 0, captured 0, rest 0"
    assert uow.payments.of_kind(ride.id, "authorization").status == "canceled"
    assert uow.ledger.entries == {}


def test_a_ride_ended_before_its_hold_was_made_waits_for_it() -> None:
    uow = FakeUnitOfWork()
    ride = _card_ride(uow, status=RideStatus.COMPLETED, fare_amount=900)
    with pytest.raises(NotVisibleYet):
        _tx(card.settle_ride, uow, CTX, ride.id)


# --- refunds and webhooks --------------------------------------------------------------
def _paid(uow: FakeUnitOfWork) -> tuple[FakeRide, object]:
    ride = _held(uow, _card_ride(uow), RideStatus.COMPLETED, fare_amount=1_200)
    _tx(card.settle_ride, uow, CTX, ride.id)
    return ride, uow.payments.of_kind(ride.id, "authorization")


def test_a_refund_is_asked_once_booked_once_and_told() -> None:
    uow = FakeUnitOfWork()
    _ride, paid = _paid(uow)
    row = uow.payments.add_refund(paid, 500, "requested_by_customer", uuid.uuid4())
    assert _tx(card.refund, uow, CTX, row.id) == "succeeded"
    assert _tx(card.refund, uow, CTX, row.id) == "succeeded"
    assert paid.amount_refunded == 500  # type: ignore[attr-defined]
    assert f"refund:{row.id}" in uow.ledger.entries
    assert [w for w, _ in uow.card_gateway.calls].count("refund") == 1
    assert "refunded" in uow.pushes.kinds


def test_a_refund_stripe_refuses_books_nothing() -> None:
    uow = FakeUnitOfWork()
    _ride, paid = _paid(uow)
    row = uow.payments.add_refund(paid, 500, "requested_by_customer", uuid.uuid4())
    uow.card_gateway.refuse_refund = PaymentRefused("no")
    assert _tx(card.refund, uow, CTX, row.id) == "failed"
    assert paid.amount_refunded == 0  # type: ignore[attr-defined]
    assert not any(k.startswith("refund:") for k in uow.ledger.entries)


def test_a_refund_that_fails_after_succeeding_is_reversed_once() -> None:
    uow = FakeUnitOfWork()
    _ride, paid = _paid(uow)
    row = uow.payments.add_refund(paid, 500, "requested_by_customer", uuid.uuid4())
    _tx(card.refund, uow, CTX, row.id)
    uow.card_gateway.refund_states[row.stripe_refund_id] = "failed"
    event = {"data": {"object": {"object": "refund", "id": row.stripe_refund_id}}}
    uow.webhooks.add("evt_1", event)
    assert _tx(card.reconcile_event, uow, CTX, "evt_1").result == "refund failed"
    assert _tx(card.reconcile_event, uow, CTX, "evt_1").result == "refund failed"  # a redelivery
    assert paid.amount_refunded == 0  # type: ignore[attr-defined]
    assert row.status == "failed"
    assert f"refund:{row.id}:reversed" in uow.ledger.entries


def test_a_payment_event_reads_stripes_current_state_and_books_what_was_taken() -> None:
    uow = FakeUnitOfWork()
    ride = _held(uow, _card_ride(uow), RideStatus.COMPLETED, fare_amount=1_200)
    auth = uow.payments.of_kind(ride.id, "authorization")
    intent = uow.card_gateway.intents[auth.stripe_payment_intent_id]
    intent.status, intent.amount_received = "succeeded", 1_200  # captured, say from the dashboard
    stale = {"object": "payment_intent", "id": intent.id, "status": "requires_capture"}
    uow.webhooks.add("evt_2", {"data": {"object": stale}, "created": NOW.timestamp() - 4})
    done = _tx(card.reconcile_event, uow, CTX, "evt_2")
    assert (done.result, done.lag_s) == ("payment succeeded", 4.0)
    assert (auth.status, auth.amount_received) == ("succeeded", 1_200)
    assert list(uow.ledger.entries) == [f"payment:{auth.id}:received"]


def test_an_event_of_a_payment_not_committed_yet_comes_back_and_others_are_not_ours() -> None:
    uow = FakeUnitOfWork()
    ours = {"object": "payment_intent", "id": "pi_x", "metadata": {"payment_id": "p1"}}
    uow.webhooks.add("evt_3", {"data": {"object": ours}})
    with pytest.raises(NotVisibleYet):
        _tx(card.reconcile_event, uow, CTX, "evt_3")
    uow.webhooks.add("evt_4", {"data": {"object": {"object": "payment_intent", "id": "pi_y"}}})
    assert _tx(card.reconcile_event, uow, CTX, "evt_4").result == "not ours"
    uow.webhooks.add("evt_5", {"data": {"object": {"object": "customer", "id": "cus_1"}}})
    assert _tx(card.reconcile_event, uow, CTX, "evt_5").result == "ignored"


# --- repair ----------------------------------------------------------------------------
def test_the_sweep_rereads_what_stripe_knows_and_resends_what_it_never_saw() -> None:
    from datetime import timedelta

    uow = FakeUnitOfWork()
    seen = _card_ride(uow)
    _tx(card.authorize_ride, uow, CTX, seen.id)
    auth = uow.payments.of_kind(seen.id, "authorization")
    auth.status, auth.updated_at = "pending", NOW - timedelta(hours=1)  # the answer was lost
    never = _card_ride(uow)
    uow.payments.of_kind(never.id, "authorization").updated_at = NOW - timedelta(hours=1)
    fresh = _card_ride(uow)
    uow.payments.of_kind(fresh.id, "authorization").updated_at = NOW
    out = _tx(card.repair_stuck, uow, CTX, NOW - timedelta(minutes=5), 100)
    assert out == {"reread": 1, "resent": 1, "refunds_reread": 0, "refunds_resent": 0}
    assert auth.status == "requires_capture"  # Stripe's state, read again
    assert uow.jobs.sent[-1] == ("payments.authorize_ride", {"ride_id": str(never.id)})
    assert uow.payments.of_kind(never.id, "authorization").updated_at == NOW  # waits again


def test_a_payment_the_device_confirmed_is_booked_and_told() -> None:
    uow = FakeUnitOfWork()
    ride = _card_ride(uow)
    auth = uow.payments.of_kind(ride.id, "authorization")
    intent = type("Intent", (), {"id": "pi_dev", "status": "succeeded", "amount_received": 900})
    _tx(card.take_intent, uow, CTX, auth, intent)
    assert (auth.status, auth.amount_received, auth.stripe_payment_intent_id) == (
        "succeeded",
        900,
        "pi_dev",
    )
    assert list(uow.ledger.entries) == [f"payment:{auth.id}:received"]
    assert uow.pushes.kinds == ["payment_succeeded"]


def test_a_payment_changed_on_a_path_that_books_nothing_is_still_booked_and_told_once() -> None:
    """The unit of work follows up every payment it handed out: a new path that only
    changes a payment's row still has the money posted, the rider told of it, and a
    failure told to the rider, once however often it commits."""
    uow = FakeUnitOfWork()
    ride = _card_ride(uow)
    uow.commit()
    auth = uow.payments.of_kind(ride.id, "authorization")
    auth.status, auth.amount_received = "succeeded", 1_500  # and nothing else
    uow.commit()
    uow.commit()
    assert list(uow.ledger.entries) == [f"payment:{auth.id}:received"]
    assert uow.pushes.kinds == ["payment_succeeded"]
    other = _card_ride(uow)
    uow.commit()
    extra = uow.payments.add(other, "extra_charge", 300, None)
    extra.status, extra.failure_code = "failed", "card_declined"
    uow.commit()
    uow.commit()
    assert [(k, e["amount"]) for _, k, e in uow.rider_alerts.told] == [("payment_failed", 300)]
