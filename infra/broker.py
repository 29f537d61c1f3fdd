"""The Celery broker transport: kombu's Redis transport, with one crash fixed.

When the broker connection drops, the worker closes the broken connection, and closing
its channel restores the unacknowledged messages - through a new Redis client made from
the connection's parameters, which the close has already cleared. kombu then fails with
`AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery does not
expect there, and the worker process exits ("Unrecoverable error") when Redis restarts.
Here that case is the connection error it is: the close carries on,
the worker reconnects, and the messages are restored by the visibility timeout (and their
jobs re-sent by the outbox sweep) instead."""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise RedisConnectionError("the broker connection is closed already")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
