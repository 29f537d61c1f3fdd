"""The use cases behind the HTTP routes that `test_ride_usecases.py` does not walk: cash,
a ride's payments, refunds, earnings and statements, cards, devices and notifications,
ratings read back, the ops view. Against the in-memory unit of work, no socket."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from domain.access import Actor, Caller
from domain.errors import Conflict, IllegalTransition, NotFound, RateLimited, Unprocessable
from domain.geo import Point
from domain.jobs import Job
from domain.payments import PaymentObjectMissing
from domain.ratings import RatedSide, summarize
from domain.rides import RideStatus
from domain.usecases import notifications, payments, ratings, rides, views
from domain.usecases.context import Context
from domain.usecases.ports import Card, IntentInfo
from tests.fakes import FakeUnitOfWork, FakeViews
from tests.unit.domain.test_rides import FakeRide

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
CTX = Context(now=NOW)


def _who(role: Actor) -> Caller:
    return Caller(uuid.uuid4(), role)


def _completed(uow: FakeUnitOfWork, p: Caller, d: Caller, **fields: object) -> FakeRide:
    fields.setdefault("status", RideStatus.COMPLETED)
    ride = FakeRide(
        passenger_id=p.id,
        driver_id=d.id,
        fare_amount=1_200,
        completed_at=NOW - timedelta(minutes=5),
        **fields,  # type: ignore[arg-type]
    )
    uow.rides.rows[ride.id] = ride
    return ride


# --- cash ------------------------------------------------------------------------------
def test_cash_is_recorded_once_as_it_was_and_a_different_amount_is_refused() -> None:
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    ride = _completed(uow, p, d)
    record, new = payments.collect_cash(uow, d, ride.id, 1_000)
    assert (record.fare, record.difference, new) == (1_200, -200, True)  # short, as it was
    assert payments.collect_cash(uow, d, ride.id, 1_000)[1] is False  # a replay
    with pytest.raises(Conflict) as err:
        payments.collect_cash(uow, d, ride.id, 1_200)
    assert err.value.code == "cash_already_recorded"
    assert list(uow.ledger.entries) == [f"ride:{ride.id}:cash"]


def test_cash_is_refused_for_a_card_ride_an_open_ride_a_wild_amount_and_a_stranger() -> None:
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    card = _completed(uow, p, d, payment="card")
    with pytest.raises(Conflict):
        payments.collect_cash(uow, d, card.id, 1_200)
    open_ride = _completed(uow, p, d, status=RideStatus.IN_PROGRESS)
    with pytest.raises(IllegalTransition):
        payments.collect_cash(uow, d, open_ride.id, 1_200)
    cash = _completed(uow, p, d)
    with pytest.raises(Unprocessable):
        payments.collect_cash(uow, d, cash.id, 10_000_000)
    with pytest.raises(NotFound):
        payments.collect_cash(uow, _who(Actor.DRIVER), cash.id, 1_200)
    assert uow.ledger.entries == {}


# --- a ride's payments and refunds -------------------------------------------------------
def test_a_rides_payments_are_the_riders_whole_and_the_drivers_reduced() -> None:
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    ride = _completed(uow, p, d, payment="card")
    uow.payments.add(ride, "authorization", 1_500, None)
    assert payments.ride_payments(uow, p, ride.id).full_view is True
    seen = payments.ride_payments(uow, d, ride.id)
    assert (len(seen.items), seen.full_view) == (1, False)
    with pytest.raises(NotFound):
        payments.ride_payments(uow, _who(Actor.PASSENGER), ride.id)


def test_a_refund_is_never_more_than_what_is_left_and_a_worker_makes_it() -> None:
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    ride = _completed(uow, p, d, payment="card")
    paid = uow.payments.add(ride, "authorization", 1_500, None)
    paid.status, paid.amount_received = "succeeded", 1_200
    admin = _who(Actor.ADMIN)
    first = payments.request_refund(uow, admin, paid.id, 500, "requested_by_customer")
    assert uow.jobs.sent == [(Job.REFUND, {"refund_id": str(first.id)})]
    with pytest.raises(Conflict) as err:
        payments.request_refund(uow, admin, paid.id, 800, "requested_by_customer")
    assert err.value.code == "refund_exceeds_captured"
    rest = payments.request_refund(uow, admin, paid.id, None, "requested_by_customer")
    assert rest.amount == 700  # all that is left by default
    with pytest.raises(NotFound):
        payments.request_refund(uow, admin, uuid.uuid4(), None, "duplicate")


# --- earnings, statements, payout account --------------------------------------------------
def test_earnings_show_the_drivers_position_and_page_their_postings() -> None:
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    for _ in range(3):
        ride = _completed(uow, p, d)
        payments.collect_cash(uow, d, ride.id, 1_200)
    first = views.driver_earnings(FakeViews(uow), d, None, limit=2)
    assert first.balances == {"usd": {"earned": 0, "cash_held": 3_600, "net_payable": -3_600}}
    assert len(first.postings) == 2
    assert first.next_before is not None
    rest = views.driver_earnings(FakeViews(uow), d, first.next_before, limit=2)
    assert (len(rest.postings), rest.next_before) == (1, None)
    assert payments.payout_account_link(uow, d).endswith(str(d.id))


# --- cards ---------------------------------------------------------------------------------
def test_a_rider_saves_lists_makes_default_and_removes_only_their_own_cards() -> None:
    uow, p = FakeUnitOfWork(), _who(Actor.PASSENGER)
    setup = payments.start_saving_card(uow, p, cards_per_hour=2)
    assert setup.customer_id == uow.cards.customer(p.id)
    visa = Card("pm_visa", "visa", "4242", 12, 2030)
    amex = Card("pm_amex", "amex", "0005", 1, 2031)
    uow.cards.saved_cards[setup.customer_id] = [visa, amex]
    assert payments.make_default_card(uow, p, "pm_amex").default is True
    assert [c.id for c in payments.saved_cards(uow, p)] == ["pm_amex", "pm_visa"]
    payments.remove_card(uow, p, "pm_visa")
    assert [c.id for c in payments.saved_cards(uow, p)] == ["pm_amex"]
    with pytest.raises(PaymentObjectMissing):
        payments.remove_card(uow, _who(Actor.PASSENGER), "pm_amex")  # not theirs
    payments.start_saving_card(uow, p, cards_per_hour=2)
    with pytest.raises(RateLimited):
        payments.start_saving_card(uow, p, cards_per_hour=2)


def test_the_device_acts_on_what_is_owed_first_and_its_confirmation_is_booked() -> None:
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    ride = _completed(uow, p, d, payment="card")
    hold = uow.payments.add(ride, "authorization", 1_500, None)
    hold.stripe_payment_intent_id, hold.status = "pi_hold", "succeeded"
    extra = uow.payments.add(ride, "extra_charge", 300, None)
    extra.stripe_payment_intent_id, extra.status = "pi_extra", "requires_action"
    uow.cards.intents["pi_extra"] = IntentInfo("pi_extra", "secret", "requires_action", 300, "usd")
    payment, intent = payments.device_intent(uow, p, ride.id)
    assert (payment.id, intent.id) == (extra.id, "pi_extra")
    with pytest.raises(NotFound):
        payments.device_intent(uow, _who(Actor.PASSENGER), ride.id)
    uow.commit()
    confirmed = payments.confirm_on_device(uow, CTX, p, extra.id)
    uow.commit()
    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 300)
    assert list(uow.ledger.entries) == [f"payment:{extra.id}:received"]
    with pytest.raises(NotFound):
        payments.confirm_on_device(uow, CTX, _who(Actor.PASSENGER), extra.id)


# --- devices and notifications --------------------------------------------------------------
def test_devices_promotions_and_the_log_are_each_users_own() -> None:
    uow, p = FakeUnitOfWork(), _who(Actor.PASSENGER)
    notifications.register_device(uow, p, "tok-1", "android")
    with pytest.raises(NotFound):
        notifications.unregister_device(uow, _who(Actor.PASSENGER), "tok-1")
    notifications.unregister_device(uow, p, "tok-1")
    assert uow.devices.tokens == {}
    assert FakeViews(uow).wants_promotions(p.id) is False
    assert notifications.want_promotions(uow, p, True) is True
    assert FakeViews(uow).wants_promotions(p.id) is True
    uow.devices.notes += [SimpleNamespace(user_id=p.id, kind="trip_started")]
    uow.devices.notes += [SimpleNamespace(user_id=uuid.uuid4(), kind="offer")]
    mine = FakeViews(uow).notifications_of(p.id, None, 20)
    assert [n.kind for n in mine] == ["trip_started"]


def test_a_broadcast_is_planned_by_workers_and_its_progress_read_back() -> None:
    uow, admin = FakeUnitOfWork(), _who(Actor.ADMIN)
    started = notifications.broadcast(uow, admin, "Rain", "Rides are on us")
    assert (started.status, uow.jobs.sent) == (
        "planning",
        [(Job.BROADCAST, {"broadcast_id": str(started.id)})],
    )
    assert FakeViews(uow).broadcast_progress(started.id).status == "planning"
    notifications.plan_broadcast(uow, started.id)
    assert FakeViews(uow).broadcast_progress(started.id).status == "done"
    with pytest.raises(NotFound):
        FakeViews(uow).broadcast_progress(uuid.uuid4())


# --- ratings read back, ops, rides --------------------------------------------------------
def test_ratings_received_a_summary_with_its_prior_and_the_open_alerts() -> None:
    uow, driver = FakeUnitOfWork(), uuid.uuid4()
    prior = views.rating_summary(FakeViews(uow), CTX, driver)
    assert prior == summarize([], RatedSide.PASSENGER, CTX.ratings)  # nobody rated them yet
    uow.ratings.roles[driver] = "driver"
    for n in range(12):
        uow.ratings.rows[uuid.uuid4()] = SimpleNamespace(
            ratee_id=driver, stars=1, created_at=NOW + timedelta(seconds=n)
        )
    computed = ratings.aggregate(uow, CTX, driver)
    assert views.rating_summary(FakeViews(uow), CTX, driver) == computed
    assert len(FakeViews(uow).ratings_received(driver, None, 5)) == 5
    assert [a.user_id for a in FakeViews(uow).open_rating_alerts(None, 10)] == [driver]


def test_the_ops_view_is_for_admins_only() -> None:
    read = FakeViews(FakeUnitOfWork())
    assert views.overview(read, _who(Actor.ADMIN), since_h=6)["since_h"] == 6
    with pytest.raises(NotFound):
        views.overview(read, _who(Actor.DRIVER))


def test_an_estimate_a_listing_by_role_and_a_decline_that_moves_dispatch_on() -> None:
    quote = rides.estimate(CTX, Point(52.52, 13.405), Point(52.50, 13.45))
    assert quote.amount > 0
    assert quote.distance_m > 0
    with pytest.raises(Unprocessable):
        rides.estimate(CTX, Point(52.52, 13.405), Point(40.71, -74.0))  # over the route cap
    uow, p, d = FakeUnitOfWork(), _who(Actor.PASSENGER), _who(Actor.DRIVER)
    mine = _completed(uow, p, d)
    _completed(uow, _who(Actor.PASSENGER), _who(Actor.DRIVER))
    listed = rides.list_rides(uow, p, status=None, before=None, limit=20)
    assert [r.id for r in listed] == [mine.id]
    assert len(rides.list_rides(uow, _who(Actor.ADMIN), status=None, before=None, limit=20)) == 2
    requested = FakeRide(passenger_id=p.id)
    uow.rides.rows[requested.id] = requested
    uow.offers.grant(requested.id, d.id, NOW + timedelta(seconds=15))
    rides.decline(uow, CTX, d, requested.id)
    assert uow.offers.offers[0].status == "declined"
    assert uow.jobs.sent == [(Job.DISPATCH, {"ride_id": str(requested.id)})]
