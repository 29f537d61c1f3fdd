"""Which queue each job goes to, spelled out job by job (a job's name does not decide it),
and the order the push worker reads its queues in. Celery's routes, the workers' `-Q`
and the queue-depth metrics all read this table; a job missing from it fails the tests."""

from __future__ import annotations

from enum import StrEnum

from domain.jobs import Job


class Queue(StrEnum):
    PAYMENTS = "payments"  # money: its own worker, never behind a burst of pushes
    NOTIFICATIONS = "notifications"  # a ride's pushes
    PROMOTIONS = "promotions"  # broadcasts, read only when no ride push waits
    DEFAULT = "default"  # everything else


QUEUE_OF: dict[Job, Queue] = {
    Job.PUBLISH_RIDE: Queue.DEFAULT,
    Job.STORE_TRIP: Queue.DEFAULT,
    Job.END_STUCK_RIDE: Queue.DEFAULT,
    Job.SWEEP_STUCK_RIDES: Queue.DEFAULT,
    Job.DISPATCH: Queue.DEFAULT,
    Job.SWEEP_DISPATCH: Queue.DEFAULT,
    Job.POST_LEDGER: Queue.DEFAULT,
    Job.AUTHORIZE_RIDE: Queue.PAYMENTS,
    Job.SETTLE_RIDE: Queue.PAYMENTS,
    Job.REFUND: Queue.PAYMENTS,
    Job.RECONCILE_EVENT: Queue.PAYMENTS,
    Job.SWEEP_STUCK_PAYMENTS: Queue.PAYMENTS,
    Job.SWEEP_HOLDS: Queue.PAYMENTS,
    Job.SWEEP_WEBHOOKS: Queue.PAYMENTS,
    Job.SETTLE_DAY: Queue.PAYMENTS,
    Job.PAY_OUT: Queue.PAYMENTS,
    Job.PAY_STATEMENT: Queue.PAYMENTS,
    Job.NOTIFY_RIDE_EVENT: Queue.NOTIFICATIONS,
    Job.NOTIFY_ARRIVING: Queue.NOTIFICATIONS,
    Job.NOTIFY_RATING: Queue.NOTIFICATIONS,
    Job.DELIVER_PUSH: Queue.NOTIFICATIONS,
    Job.BROADCAST: Queue.PROMOTIONS,
    Job.DELIVER_PROMOTION: Queue.PROMOTIONS,
    Job.AGGREGATE_RATINGS: Queue.DEFAULT,
    Job.SWEEP_STALE_POSITIONS: Queue.DEFAULT,
    Job.REDISPATCH_OUTBOX: Queue.DEFAULT,
}

#: The push worker's queues, in the order it reads them (celeryconfig's "priority"
#: strategy): a promotion is taken only when no ride push waits.
PUSH_QUEUES = (Queue.NOTIFICATIONS, Queue.PROMOTIONS)
#: The main worker's queues.
MAIN_QUEUES = (Queue.PAYMENTS, Queue.DEFAULT)


def task_routes() -> dict[str, dict[str, str]]:
    return {job.value: {"queue": queue.value} for job, queue in QUEUE_OF.items()}
