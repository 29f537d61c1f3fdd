"""The Celery broker transport: kombu's Redis transport, with one crash fixed.

When the broker connection drops, the worker closes the broken connection, and closing
its channel restores the unacknowledged messages - through a new Redis client made from
the connection's parameters, which the close has already cleared. kombu then fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery does not
expect there, and the worker process exits ("Unrecoverable error") when Redis restarts.
Here that case is the connection error it is: the close carries on,
the worker reconnects, and the messages are restored by the visibility timeout (and their
jobs re-sent by the outbox sweep) instead. With `sentinel://` broker URLs the same fix sits
on kombu's Sentinel transport: a failover of the broker's primary is then a reconnect to the
replica the sentinels promoted."""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class _ClosedIsAConnectionError:
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # type: ignore[attr-defined]
            raise RedisConnectionError("the broker connection is closed already")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]


class Channel(_ClosedIsAConnectionError, kombu_redis.Channel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(_ClosedIsAConnectionError, kombu_redis.SentinelChannel):
    """The same, for a broker reached through Redis Sentinel (`sentinel://` URLs): each
    (re)connection asks the sentinels which Redis is the primary now."""


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
