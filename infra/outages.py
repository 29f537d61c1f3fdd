"""What a passing outage of a service we depend on looks like (the database, Redis or
the broker unreachable, a connection cut): the API answers 503 with `Retry-After` rather than 500,
and the client tries again; Celery tasks retry. Trying again is safe: a request that
failed so did not commit, or it did and its repeat is recognised (a ride request by its
Idempotency-Key, a ping by its id or time, a step by the ride's state)."""

from __future__ import annotations

from kombu import exceptions as broker_errors
from redis import exceptions as redis_errors
from sqlalchemy import exc as sa_errors

OUTAGES: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,  # Redis restarted and still reading its snapshot
    # a cluster in failover: a shard without a primary yet, or a slot not served for now
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.ClusterError,
    redis_errors.RedisClusterException,  # no node of the cluster reachable, a slot unserved
    redis_errors.ReadOnlyError,  # a primary just demoted to replica
    sa_errors.OperationalError,  # connection refused or terminated, a lock timeout
    sa_errors.InterfaceError,
    sa_errors.DisconnectionError,
    sa_errors.TimeoutError,  # no connection free in the pool in time
    broker_errors.OperationalError,  # the broker unreachable for a job sent at once
)
