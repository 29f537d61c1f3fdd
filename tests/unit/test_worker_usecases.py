"""The use cases the workers run, against the in-memory unit of work: dispatch, ledger
postings, trips, rating aggregation, notifications, settlement and the repair sweeps.
No process, no socket: what each decides is asserted on the fakes' state."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from domain.dispatch import Candidate, DispatchRules
from domain.errors import NotVisibleYet
from domain.fares import commission
from domain.jobs import Job
from domain.ledger import cash_collected_entry
from domain.money import Money
from domain.payments import PaymentRefused
from domain.rides import RideStatus
from domain.trip import PathPoint, encode_polyline
from domain.usecases import dispatch, ledger, notifications, ratings, settlement, sweeps, trips
from domain.usecases.context import Context
from domain.usecases.ports import ComeBack
from tests.fakes import FakeUnitOfWork, FakeViews, MemoryDeliveries, MemoryOffer
from tests.unit.domain.test_rides import FakeRide

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
RULES = DispatchRules(wave_size=2, offer_ttl_s=15, first_radius_m=1_000, max_radius_m=2_000)
CTX = Context(now=NOW, dispatch=RULES)


def _ride(uow: FakeUnitOfWork, **fields: object) -> FakeRide:
    ride = FakeRide(**fields)  # type: ignore[arg-type]
    uow.rides.rows[ride.id] = ride
    return ride


def _driver(distance_m: float) -> Candidate:
    return Candidate(str(uuid.uuid4()), distance_m)


# --- dispatch ----------------------------------------------------------------------------
def test_a_wave_offers_the_nearest_drivers_and_waits_for_their_answers() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow, created_at=NOW - timedelta(seconds=2))
    near, nearer, far = _driver(800), _driver(300), _driver(1_900)
    uow.drivers.around = [near, nearer, far]
    done = dispatch.advance(uow, CTX, ride.id)
    assert done == dispatch.Advanced("wave 1: 2 offers", first_offer_after_s=2.0)
    assert {str(o.driver_id) for o in uow.offers.offers} == {near.driver_id, nearer.driver_id}
    assert (ride.dispatch_wave, ride.dispatch_deadline) == (1, NOW + timedelta(seconds=15))
    offered = {user: p.data["expires_at"] for (user, _), p in uow.pushes.logged.items()}
    assert offered == {
        uuid.UUID(near.driver_id): "2026-03-01T12:00:15Z",
        uuid.UUID(nearer.driver_id): "2026-03-01T12:00:15Z",
    }  # each driver offered gets a push of their offer
    # run again while the wave is open: nothing new, come back when it closes
    assert dispatch.advance(uow, CTX, ride.id).outcome == "waiting"
    assert len(uow.offers.offers) == 2


def test_the_next_wave_reaches_further_and_skips_those_already_offered() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow)
    first, second = _driver(500), _driver(1_500)
    uow.drivers.around = [first, second]
    dispatch.advance(uow, CTX, ride.id)
    later = CTX.at(NOW + timedelta(seconds=16))
    done = dispatch.advance(uow, later, ride.id)
    assert done == dispatch.Advanced("wave 2: 1 offers")  # not the first offers: no figure
    assert [(str(o.driver_id), o.status) for o in uow.offers.offers] == [
        (first.driver_id, "expired"),
        (second.driver_id, "pending"),
    ]


def test_an_empty_wave_looks_again_soon_and_the_last_one_expires_the_ride() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow)
    t = NOW
    for wave in range(1, RULES.max_waves + 1):
        done = dispatch.advance(uow, CTX.at(t), ride.id)
        assert done.outcome == f"wave {wave}: 0 offers"
        assert ride.dispatch_deadline == t + timedelta(seconds=RULES.empty_wave_retry_s)
        t += timedelta(seconds=RULES.empty_wave_retry_s)
    assert dispatch.advance(uow, CTX.at(t), ride.id).outcome == "expired"
    assert ride.status == RideStatus.EXPIRED
    assert ride.dispatch_deadline is None
    uow.commit()
    assert Job.POST_LEDGER in uow.jobs.tasks  # the expiry's follow-ups were recorded


def test_a_ride_no_longer_requested_withdraws_its_open_offers() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow, status=RideStatus.CANCELLED)
    driver = uuid.uuid4()
    uow.offers.offers.append(MemoryOffer(ride.id, driver, NOW + timedelta(seconds=5)))
    assert dispatch.advance(uow, CTX, ride.id).outcome == "ride is cancelled"
    assert uow.dispatching.told == [(driver, "withdrawn")]


def test_a_ride_not_committed_yet_makes_the_move_come_back() -> None:
    with pytest.raises(NotVisibleYet):
        dispatch.advance(FakeUnitOfWork(), CTX, uuid.uuid4())


def test_the_sweep_sends_each_due_ride_on_once_per_lease() -> None:
    uow = FakeUnitOfWork()
    due = _ride(uow, dispatch_deadline=NOW - timedelta(seconds=1))
    _ride(uow, dispatch_deadline=NOW + timedelta(seconds=60))  # not due
    assert dispatch.move_due_rides(uow, CTX, lease_s=10) == 1
    assert dispatch.move_due_rides(uow, CTX, lease_s=10) == 0  # leased
    assert uow.jobs.sent == [(Job.DISPATCH, {"ride_id": str(due.id)})]
    assert dispatch.move_due_rides(uow, CTX.at(NOW + timedelta(seconds=11)), lease_s=10) == 1


# --- ledger postings ---------------------------------------------------------------------
def test_a_completed_ride_posts_its_fare_once_less_commission() -> None:
    uow = FakeUnitOfWork()
    driver = uuid.uuid4()
    ride = _ride(uow, status=RideStatus.COMPLETED, driver_id=driver, fare_amount=2_000)
    assert ledger.post_ride(uow, CTX, ride.id) == "posted"
    assert ledger.post_ride(uow, CTX, ride.id) == "duplicate"
    cut = commission(CTX.fares, Money(2_000, "usd")).amount
    assert FakeViews(uow).balances_of([f"driver_payable:{driver}"]) == {
        (f"driver_payable:{driver}", "usd"): -(2_000 - cut)
    }


def test_a_no_show_posts_its_fee_and_a_free_cancellation_posts_nothing() -> None:
    uow = FakeUnitOfWork()
    no_show = _ride(uow, status=RideStatus.NO_SHOW, driver_id=uuid.uuid4(), fee_amount=500)
    free = _ride(uow, status=RideStatus.CANCELLED)
    assert ledger.post_ride(uow, CTX, no_show.id) == "posted"
    assert list(uow.ledger.entries) == [f"ride:{no_show.id}:no_show_fee"]
    assert ledger.post_ride(uow, CTX, free.id) == "nothing to post"
    with pytest.raises(NotVisibleYet):
        ledger.post_ride(uow, CTX, uuid.uuid4())


# --- trips -------------------------------------------------------------------------------
def test_a_completed_trip_keeps_its_path_in_the_order_the_fixes_were_taken() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow, status=RideStatus.COMPLETED, started_at=NOW)
    t = NOW.timestamp()
    uow.paths.recorded[ride.id] = [
        PathPoint(t + 2, 1.002, 2.0),
        PathPoint(t - 5, 9.0, 9.0),  # before the start: not the trip
        PathPoint(t + 1, 1.001, 2.0),
    ]
    assert trips.store_path(uow, ride.id) == "stored 2 points"
    assert ride.route_polyline == encode_polyline([(1.001, 2.0), (1.002, 2.0)])
    assert trips.store_path(uow, ride.id) == "already stored"
    unfinished = _ride(uow, status=RideStatus.IN_PROGRESS)
    assert trips.store_path(uow, unfinished.id) == "not completed"


def test_a_repeated_publish_changes_nothing() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow)
    assert trips.republish(uow, ride.id, "requested", NOW) == "emitted"
    assert trips.republish(uow, ride.id, "requested", NOW) == "already published"
    with pytest.raises(NotVisibleYet):
        trips.republish(uow, uuid.uuid4(), "requested", NOW)


# --- ratings -----------------------------------------------------------------------------
def _rating(uow: FakeUnitOfWork, ratee: uuid.UUID, stars: int, n: int) -> None:
    rating = SimpleNamespace(
        id=uuid.uuid4(),
        ratee_id=ratee,
        ride_id=uuid.uuid4(),
        stars=stars,
        created_at=NOW + timedelta(seconds=n),
    )
    uow.ratings.rows[rating.id] = rating


def test_a_summary_is_recomputed_from_every_rating_and_follows_the_alert() -> None:
    uow = FakeUnitOfWork()
    driver = uuid.uuid4()
    uow.ratings.roles[driver] = "driver"
    for n in range(12):
        _rating(uow, driver, 2, n)
    low = ratings.aggregate(uow, CTX, driver)
    assert (low.count, low.average) == (12, 2.0)
    assert uow.ratings.summaries[driver] == ("driver", low)
    assert uow.ratings.alerts[driver] == low
    for n in range(12, 60):
        _rating(uow, driver, 5, n)
    again = ratings.aggregate(uow, CTX, driver)
    assert again.count == 60
    assert driver not in uow.ratings.alerts  # the alert is closed
    assert ratings.aggregate(uow, CTX, driver) == again  # a duplicate job: the same


def test_a_rating_has_its_ratee_recomputed_and_told_once_it_commits() -> None:
    from domain.access import Actor, Caller

    uow = FakeUnitOfWork()
    driver = uuid.uuid4()
    ride = _ride(
        uow, status=RideStatus.COMPLETED, driver_id=driver, completed_at=NOW - timedelta(hours=1)
    )
    passenger = Caller(ride.passenger_id, Actor.PASSENGER)
    rating = ratings.rate(uow, CTX, passenger, ride.id, 5, None, [])
    assert uow.jobs.sent == []  # nothing before the commit
    uow.commit()
    uow.commit()
    assert uow.jobs.sent == [
        (Job.AGGREGATE_RATINGS, {"user_id": str(driver)}),
        (Job.NOTIFY_RATING, {"rating_id": str(rating.id)}),
    ]


def test_a_user_not_committed_yet_makes_the_aggregation_come_back() -> None:
    with pytest.raises(NotVisibleYet):
        ratings.aggregate(FakeUnitOfWork(), CTX, uuid.uuid4())


# --- notifications -----------------------------------------------------------------------
def test_a_ride_event_tells_both_sides_once() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(uow, status=RideStatus.ACCEPTED, driver_id=uuid.uuid4())
    told = notifications.tell_ride_event(uow, ride.id, "accepted")
    assert told == len(uow.pushes.logged) >= 1
    uow.commit()  # each one logged has its delivery queued
    assert uow.jobs.tasks == [Job.DELIVER_PUSH] * told
    notifications.tell_ride_event(uow, ride.id, "accepted")
    uow.commit()
    assert len(uow.pushes.logged) == told  # a repeated job logs nothing new
    assert uow.jobs.tasks == [Job.DELIVER_PUSH] * told
    with pytest.raises(NotVisibleYet):
        notifications.tell_ride_event(uow, uuid.uuid4(), "accepted")


def test_arriving_is_told_only_while_the_ride_waits_for_its_driver() -> None:
    uow = FakeUnitOfWork()
    waiting = _ride(uow, status=RideStatus.ACCEPTED, driver_id=uuid.uuid4())
    started = _ride(uow, status=RideStatus.IN_PROGRESS, driver_id=uuid.uuid4())
    assert notifications.tell_arriving(uow, waiting.id) == 1
    assert notifications.tell_arriving(uow, started.id) == 0
    assert notifications.tell_arriving(uow, uuid.uuid4()) == 0
    assert uow.pushes.kinds == ["driver_arriving"]


def test_a_rating_tells_the_one_rated() -> None:
    uow = FakeUnitOfWork()
    ratee = uuid.uuid4()
    _rating(uow, ratee, 4, 0)
    [rating_id] = uow.ratings.rows
    assert notifications.tell_rating(uow, rating_id) == 1
    assert [user for user, _ in uow.pushes.logged] == [ratee]
    with pytest.raises(NotVisibleYet):
        notifications.tell_rating(uow, uuid.uuid4())


def test_a_push_reaches_each_device_at_most_once_and_comes_back_for_the_rest() -> None:
    fcm = MemoryDeliveries()
    note = uuid.uuid4()
    fcm.messages[note] = ("push", ["a", "b"])
    fcm.answers["b"] = ComeBack(30.0)  # FCM: come back in 30 s
    assert notifications.deliver(fcm, note) == ComeBack(30.0)
    assert fcm.sent == [(note, "a")]
    fcm.answers.pop("b")
    assert notifications.deliver(fcm, note) is None
    assert fcm.sent == [(note, "a"), (note, "b")]  # "a" never twice
    assert fcm.settled == [(note, True), (note, False)]


def test_a_claimed_delivery_is_not_sent_again_and_fcm_out_of_reach_claims_nothing() -> None:
    fcm = MemoryDeliveries()
    note = uuid.uuid4()
    fcm.messages[note] = ("push", ["a"])
    fcm.status[(note, "a")] = "sending"  # its sender died before FCM answered
    assert notifications.deliver(fcm, note) is None
    assert fcm.sent == []
    other = uuid.uuid4()
    fcm.messages[other] = ("push", ["c"])
    fcm.reachable = False
    assert notifications.deliver(fcm, other) == ComeBack(None)
    assert (other, "c") not in fcm.status
    assert notifications.deliver(fcm, uuid.uuid4()) is None  # not logged: nothing to do


def test_a_broadcast_is_planned_batch_by_batch() -> None:
    uow = FakeUnitOfWork()
    uow.broadcasts.batches = 2
    broadcast_id = uow.broadcasts.create("t", "b", uuid.uuid4())
    assert notifications.plan_broadcast(uow, broadcast_id) is False
    assert uow.jobs.sent == [(Job.BROADCAST, {"broadcast_id": str(broadcast_id)})]
    uow.commit()  # the batch's promotions go by the low-priority queue
    assert uow.jobs.tasks == [Job.BROADCAST, Job.DELIVER_PROMOTION]
    assert notifications.plan_broadcast(uow, broadcast_id) is True
    uow.commit()
    assert uow.jobs.tasks == [Job.BROADCAST, Job.DELIVER_PROMOTION, Job.DELIVER_PROMOTION]


# --- settlement --------------------------------------------------------------------------
def _fare(uow: FakeUnitOfWork, driver: uuid.UUID, amount: int, on: datetime) -> None:
    ride = _ride(uow, status=RideStatus.COMPLETED, driver_id=driver, fare_amount=amount)
    entry = ledger.ride_entry(CTX, ride)
    assert entry is not None and uow.ledger.post(entry)  # noqa: PT018
    uow.statements.posted_at[entry.key] = on


def _cash(uow: FakeUnitOfWork, driver: uuid.UUID, amount: int, on: datetime) -> None:
    entry = cash_collected_entry(uuid.uuid4(), uuid.uuid4(), driver, Money(amount, "usd"))
    uow.ledger.post(entry)
    uow.statements.posted_at[entry.key] = on


def _earned(amount: int) -> int:
    return amount - commission(CTX.fares, Money(amount, "usd")).amount


def test_a_day_closes_into_one_statement_per_driver_and_currency_once() -> None:
    uow = FakeUnitOfWork()
    driver = uuid.uuid4()
    day = datetime(2026, 2, 27, 10, tzinfo=UTC)
    _fare(uow, driver, 2_000, day)
    _fare(uow, driver, 1_000, day)
    _cash(uow, driver, 1_000, day)
    _fare(uow, driver, 9_000, day + timedelta(days=1))  # the next day: not in this one
    assert settlement.close_day(uow, date(2026, 2, 27)) == 1
    assert settlement.close_day(uow, date(2026, 2, 27)) == 0
    [st] = uow.statements.rows
    earned = _earned(2_000) + _earned(1_000)
    assert (st.earned, st.cash_held, st.net, st.rides) == (earned, 1_000, earned - 1_000, 3)
    assert (st.payout_amount, st.payout_status) == (earned - 1_000, "pending")


def test_what_a_driver_owes_is_carried_into_their_next_statement() -> None:
    uow = FakeUnitOfWork()
    driver = uuid.uuid4()
    first, second = datetime(2026, 2, 26, 9, tzinfo=UTC), datetime(2026, 2, 27, 9, tzinfo=UTC)
    _cash(uow, driver, 3_000, first)  # they kept 30.00 of ours
    _fare(uow, driver, 5_000, second)
    # beat catches up on the last days, oldest first (CTX is 2026-03-01 12:00)
    assert settlement.close_days(uow, CTX) == 2
    owed, paid = sorted(uow.statements.rows, key=lambda r: r.period)
    assert (owed.payout_amount, owed.carry_out, owed.payout_status) == (0, -3_000, "carried")
    assert (paid.carried_in, paid.payout_amount) == (-3_000, _earned(5_000) - 3_000)


def test_a_statement_is_paid_by_one_transfer_and_one_journal_entry() -> None:
    uow = FakeUnitOfWork()
    driver = uuid.uuid4()
    _fare(uow, driver, 2_000, datetime(2026, 2, 28, 9, tzinfo=UTC))
    settlement.close_day(uow, date(2026, 2, 28))
    [st] = uow.statements.rows
    assert settlement.send_payouts(uow, CTX, retry_after_s=3600) == 1
    assert uow.jobs.sent == [(Job.PAY_STATEMENT, {"statement_id": str(st.id)})]
    # no account yet: payable, tried again after the retry interval only
    assert settlement.pay_statement(uow, CTX, st.id) == "payable"
    assert st.payout_error == "no_payout_account"
    assert settlement.send_payouts(uow, CTX, retry_after_s=3600) == 0
    uow.payout_accounts.accounts[driver] = "acct_1"
    later = CTX.at(NOW + timedelta(hours=2))
    uow.card_gateway.refuse_transfer = PaymentRefused("no funds yet", code="balance_insufficient")
    assert settlement.pay_statement(uow, later, st.id) == "payable"
    assert (st.payout_error, st.payout_attempts) == ("balance_insufficient", 1)
    assert settlement.pay_statement(uow, later, st.id) == "paid"
    uow.commit()  # the payout is booked with the commit
    assert settlement.pay_statement(uow, later, st.id) == "paid"  # a repeat pays nothing
    uow.commit()
    assert list(uow.card_gateway.transfers.values()) == [("acct_1", _earned(2_000), "usd")]
    assert uow.ledger.entry_amount(f"payout:{st.id}") == _earned(2_000)
    with pytest.raises(NotVisibleYet):
        settlement.pay_statement(uow, later, uuid.uuid4())


# --- repair sweeps -----------------------------------------------------------------------
def test_a_hold_left_standing_is_settled_and_one_about_to_lapse_on_an_open_ride_alerts() -> None:
    uow = FakeUnitOfWork()
    ended = _ride(uow, status=RideStatus.COMPLETED, payment="card")
    open_ride = _ride(uow, status=RideStatus.IN_PROGRESS, payment="card")
    fresh = _ride(uow, status=RideStatus.COMPLETED, payment="card")
    for ride, updated, lapses in (
        (ended, NOW - timedelta(hours=1), NOW + timedelta(days=6)),
        (open_ride, NOW - timedelta(hours=1), NOW + timedelta(hours=2)),
        (fresh, NOW, NOW + timedelta(days=6)),
    ):
        hold = uow.payments.add(ride, "authorization", 1_000, None)
        hold.status, hold.updated_at, hold.capture_before = "requires_capture", updated, lapses
    out = sweeps.settle_standing_holds(
        uow, unchanged_since=NOW - timedelta(minutes=10), lapsing_by=NOW + timedelta(hours=6)
    )
    assert out == {"settled": 1, "expiring_settled": 0, "expiring_open": 1}
    assert uow.jobs.sent == [(Job.SETTLE_RIDE, {"ride_id": str(ended.id)})]


def test_webhooks_left_unprocessed_are_sent_again() -> None:
    uow = FakeUnitOfWork()
    uow.webhooks.add("evt_old", {}, received_at=NOW - timedelta(minutes=10))
    uow.webhooks.add("evt_new", {}, received_at=NOW)
    assert sweeps.reprocess_webhooks(uow, NOW - timedelta(minutes=5)) == 1
    assert uow.jobs.sent == [(Job.RECONCILE_EVENT, {"event_id": "evt_old"})]


def test_stuck_rides_are_sent_to_be_ended_but_a_driver_still_pinging_is_left_alone() -> None:
    uow = FakeUnitOfWork()
    hours_ago = NOW - timedelta(hours=5)
    never_started = _ride(uow, status=RideStatus.ACCEPTED, accepted_at=hours_ago)
    silent = _ride(uow, status=RideStatus.IN_PROGRESS, driver_id=uuid.uuid4(), started_at=hours_ago)
    long_trip = _ride(
        uow, status=RideStatus.IN_PROGRESS, driver_id=uuid.uuid4(), started_at=hours_ago
    )
    uow.drivers.seen[long_trip.driver_id] = NOW - timedelta(minutes=1)  # type: ignore[index]
    _ride(uow, status=RideStatus.ACCEPTED, accepted_at=NOW)  # within its deadline
    sent = sweeps.find_stuck_rides(
        uow, unstarted_before=NOW - timedelta(hours=1), silent_before=NOW - timedelta(hours=1)
    )
    assert sent == 2
    assert {kw["ride_id"] for _, kw in uow.jobs.sent} == {str(never_started.id), str(silent.id)}


def test_a_stuck_ride_is_ended_by_the_rules_and_one_that_moved_on_is_left() -> None:
    uow = FakeUnitOfWork()
    ride = _ride(
        uow,
        status=RideStatus.ACCEPTED,
        driver_id=uuid.uuid4(),
        accepted_at=NOW - timedelta(hours=5),
    )
    deadlines = {"unstarted_before": NOW - timedelta(hours=1), "silent_before": NOW}
    ended = sweeps.end_stuck_ride(uow, CTX, ride.id, last_seen=None, **deadlines)
    assert ended == RideStatus.CANCELLED == ride.status
    assert sweeps.end_stuck_ride(uow, CTX, ride.id, last_seen=None, **deadlines) is None
    with pytest.raises(NotVisibleYet):
        sweeps.end_stuck_ride(uow, CTX, uuid.uuid4(), last_seen=None, **deadlines)


def test_jobs_never_completed_are_sent_again_and_silent_drivers_forgotten() -> None:
    uow = FakeUnitOfWork()
    uow.jobs.stale = [(Job.DISPATCH, {"ride_id": "r"})]
    assert sweeps.resend_stale_jobs(uow, 30) == 1
    assert uow.jobs.sent == [(Job.DISPATCH, {"ride_id": "r"})]
    sweeps.forget_silent_drivers(uow, CTX)
    assert uow.drivers.forgotten_at == [NOW]
