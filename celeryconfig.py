"""Celery configuration (Celery 5.7, Redis broker); the reasons behind each setting are in
docs/design.md and docs/guarantees.md."""

from __future__ import annotations

from kombu import Queue as KombuQueue

from domain.jobs import Job
from infra.redis import sentinels_of
from infra.routing import Queue
from infra.routing import task_routes as task_routes_of_jobs
from infra.settings import get_settings

_settings = get_settings()

broker_url = _settings.broker_url
# kombu's Redis transport, one crash fixed; through Sentinel when the URL says so
broker_transport = (
    "infra.broker:SentinelTransport" if _settings.broker_via_sentinel else "infra.broker:Transport"
)
# Celery's own state (results, beat's schedule and lock) is kept in live state's Redis,
# or with the broker when live state is a cluster (neither speaks cluster)
_celery_state = _settings.broker_url if _settings.redis_cluster else _settings.redis_url
result_backend = _celery_state
broker_connection_retry_on_startup = True
broker_connection_max_retries = None  # reconnect forever
worker_cancel_long_running_tasks_on_connection_loss = True

# A task must be longer-lived than nothing we run; the visibility timeout sits above
# the longest task so a healthy long task is never redelivered, and the restore
# sweep runs every ~10 s so a dead worker's unacked task comes back quickly.
_VISIBILITY_S = 15 * 60
broker_transport_options = {
    "visibility_timeout": _VISIBILITY_S,
    "unacked_restore_interval": 10,
    "unacked_restore_throttle": 1,
    # a worker takes from its queues in the order given (-Q notifications,promotions):
    # promotions only when no ride push waits
    "queue_order_strategy": "priority",
}
if _settings.broker_via_sentinel:
    broker_transport_options["master_name"] = _settings.broker_sentinel_master
result_backend_transport_options = {"visibility_timeout": _VISIBILITY_S}
if _settings.redis_cluster and _settings.broker_via_sentinel:
    result_backend_transport_options["master_name"] = _settings.broker_sentinel_master
visibility_timeout = _VISIBILITY_S
result_expires = 3600

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1  # one message at a time: the money queue must not hoard
task_time_limit = 300
task_soft_time_limit = 240
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "UTC"
enable_utc = True
worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False

task_default_queue = Queue.DEFAULT.value
task_queues = tuple(KombuQueue(q.value) for q in Queue)
task_routes = task_routes_of_jobs()  # each job's queue, spelled out in infra/routing.py

# Beat: one active instance, guaranteed by RedBeat's lock in Redis; a second beat
# waits and takes over when the lock expires.
beat_scheduler = "infra.beat:Scheduler"
redbeat_redis_url = _celery_state
if _settings.redis_cluster and _settings.broker_via_sentinel:
    _sentinels, _db = sentinels_of(_settings.broker_url)
    redbeat_redis_url = "redis-sentinel://"
    redbeat_redis_options = {
        "sentinels": _sentinels,
        "service_name": _settings.broker_sentinel_master,
        "db": _db,
        "socket_timeout": 2,
    }
redbeat_lock_timeout = 15
beat_max_loop_interval = 5
beat_schedule = {
    "outbox-redispatch": {"task": Job.REDISPATCH_OUTBOX, "schedule": 15.0},
    "positions-sweep-stale": {"task": Job.SWEEP_STALE_POSITIONS, "schedule": 10.0},
    # offer expiry: deadlines are rows in SQL; this looks at the due ones every second
    "dispatch-sweep": {"task": Job.SWEEP_DISPATCH, "schedule": 1.0},
    # reconciliation sweeps, with beat's deadlines (workers/reconciliation.py)
    "payments-sweep-stuck": {
        "task": Job.SWEEP_STUCK_PAYMENTS,
        "schedule": _settings.sweep_interval_s,
        "kwargs": {"older_than_s": _settings.sweep_payment_after_s},
    },
    "payments-sweep-holds": {
        "task": Job.SWEEP_HOLDS,
        "schedule": _settings.sweep_interval_s,
        "kwargs": {
            "ended_for_s": _settings.sweep_hold_ended_s,
            "expiry_margin_s": _settings.sweep_hold_expiry_margin_s,
        },
    },
    "payments-sweep-webhooks": {
        "task": Job.SWEEP_WEBHOOKS,
        "schedule": _settings.sweep_interval_s,
        "kwargs": {"older_than_s": _settings.sweep_webhook_after_s},
    },
    "rides-sweep-stuck": {
        "task": Job.SWEEP_STUCK_RIDES,
        "schedule": _settings.sweep_interval_s,
        "kwargs": {
            "unstarted_s": _settings.sweep_ride_unstarted_s,
            "silent_s": _settings.sweep_ride_silent_s,
        },
    },
    # statements for the days that are over (idempotent: once per driver-day), then payouts
    "settle-day": {"task": Job.SETTLE_DAY, "schedule": _settings.settlement_interval_s},
    "pay-out": {
        "task": Job.PAY_OUT,
        "schedule": _settings.payout_interval_s,
        "kwargs": {"retry_after_s": _settings.payout_retry_s},
    },
}
