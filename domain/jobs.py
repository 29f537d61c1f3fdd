"""Every job a worker does, by name: the use cases queue them by these names, the workers
register their tasks under them, beat schedules them, and `infra.queue.QUEUE_OF` gives
each its queue. A name is stored in the outbox and on the broker, so it never changes
once shipped (a queued job of the old name would find no task)."""

from __future__ import annotations

from enum import StrEnum


class Job(StrEnum):
    # ride follow-ups
    PUBLISH_RIDE = "rides.publish"
    STORE_TRIP = "rides.store_trip"
    END_STUCK_RIDE = "rides.end_stuck"
    SWEEP_STUCK_RIDES = "rides.sweep_stuck"
    DISPATCH = "dispatch.advance"
    SWEEP_DISPATCH = "dispatch.sweep"
    POST_LEDGER = "ledger.post_ride"
    # card payments and their repair
    AUTHORIZE_RIDE = "payments.authorize_ride"
    SETTLE_RIDE = "payments.settle_ride"
    REFUND = "payments.refund"
    RECONCILE_EVENT = "payments.reconcile_event"
    SWEEP_STUCK_PAYMENTS = "payments.sweep_stuck"
    SWEEP_HOLDS = "payments.sweep_holds"
    SWEEP_WEBHOOKS = "payments.sweep_webhooks"
    # drivers' statements and payouts
    SETTLE_DAY = "payments.settle_day"
    PAY_OUT = "payments.pay_out"
    PAY_STATEMENT = "payments.pay_statement"
    # pushes
    NOTIFY_RIDE_EVENT = "notifications.ride_event"
    NOTIFY_ARRIVING = "notifications.arriving"
    NOTIFY_RATING = "notifications.rating_received"
    DELIVER_PUSH = "notifications.deliver"
    BROADCAST = "promotions.broadcast"
    DELIVER_PROMOTION = "promotions.deliver"
    # the rest
    AGGREGATE_RATINGS = "ratings.aggregate"
    SWEEP_STALE_POSITIONS = "positions.sweep_stale"
    REDISPATCH_OUTBOX = "outbox.redispatch"
