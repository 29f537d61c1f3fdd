"""Card payment rules, pure: what a ride's end asks of its hold, and the refund cap."""

from __future__ import annotations

import pytest

from domain.errors import Conflict
from domain.payments import (
    HoldDecision,
    HoldStep,
    PaymentStatus,
    amount_due,
    captured_by_hold,
    refund_amount,
    refundable,
    rest_to_charge,
    settle_hold,
)
from domain.rides import RideStatus


@pytest.mark.parametrize(
    ("status", "fare", "fee", "due"),
    [
        (RideStatus.COMPLETED, 1840, None, 1840),
        (RideStatus.CANCELLED, None, 500, 500),
        (RideStatus.CANCELLED, None, 0, 0),
        (RideStatus.NO_SHOW, None, 500, 500),
        (RideStatus.EXPIRED, None, None, 0),
        (RideStatus.IN_PROGRESS, None, None, 0),
    ],
)
def test_what_an_ended_ride_costs(status: RideStatus, fare: int, fee: int, due: int) -> None:
    assert amount_due(status, fare, fee) == due


@pytest.mark.parametrize(
    ("due", "status", "hold", "decision"),
    [
        # the fare within the hold: captured as it is
        (1200, PaymentStatus.REQUIRES_CAPTURE, 1500, HoldDecision(HoldStep.CAPTURE, 1200)),
        # above the hold: the hold is captured whole, the rest is charged apart
        (1900, PaymentStatus.REQUIRES_CAPTURE, 1500, HoldDecision(HoldStep.CAPTURE, 1500)),
        # nothing due (a free cancellation, an expired ride): released
        (0, PaymentStatus.REQUIRES_CAPTURE, 1500, HoldDecision(HoldStep.RELEASE)),
        # not made yet: come back
        (1200, PaymentStatus.PENDING, 1500, HoldDecision(HoldStep.WAIT)),
        # already settled, released, failed or awaiting the device: the hold is left alone
        (1200, PaymentStatus.SUCCEEDED, 1500, HoldDecision(HoldStep.NOTHING)),
        (1200, PaymentStatus.CANCELED, 1500, HoldDecision(HoldStep.NOTHING)),
        (1200, PaymentStatus.FAILED, 1500, HoldDecision(HoldStep.NOTHING)),
        (1200, PaymentStatus.REQUIRES_ACTION, 1500, HoldDecision(HoldStep.NOTHING)),
    ],
)
def test_what_to_do_with_the_hold(
    due: int, status: PaymentStatus, hold: int, decision: HoldDecision
) -> None:
    assert settle_hold(due, status, hold) == decision


def test_the_rest_is_what_the_hold_did_not_bring_in() -> None:
    assert captured_by_hold(PaymentStatus.SUCCEEDED, 1500) == 1500
    assert captured_by_hold(PaymentStatus.CANCELED, 0) == 0
    assert captured_by_hold(PaymentStatus.FAILED, 0) == 0
    assert rest_to_charge(1900, 1500) == 400
    assert rest_to_charge(1200, 1200) == 0
    assert rest_to_charge(1200, 1500) == 0  # never negative
    assert rest_to_charge(1200, captured_by_hold(PaymentStatus.FAILED, 0)) == 1200


def test_refunds_never_exceed_what_was_captured() -> None:
    assert refundable(1500, 0) == 1500
    assert refundable(1500, 600) == 900
    assert refund_amount(None, 1500, 600) == 900  # all that is left by default
    assert refund_amount(300, 1500, 600) == 300
    with pytest.raises(Conflict) as too_much:
        refund_amount(901, 1500, 600)
    assert too_much.value.code == "refund_exceeds_captured"
    with pytest.raises(Conflict):
        refund_amount(None, 1500, 1500)  # nothing left
    with pytest.raises(Conflict) as nothing:
        refund_amount(100, 0, 0)
    assert nothing.value.code == "nothing_to_refund"
    with pytest.raises(Conflict):
        refund_amount(0, 1500, 0)
