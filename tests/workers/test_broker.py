"""The broker transport's one fix: closing a channel whose connection Celery has already
torn down (the broker restarted) is a connection error Celery ignores, not a crash."""

from __future__ import annotations

import pytest
from kombu import Connection, Queue
from kombu.common import ignore_errors
from kombu.transport.redis import Transport as KombuTransport

from infra.broker import Transport
from infra.settings import get_settings


def _torn_down(transport: type[KombuTransport]) -> tuple[Connection, object]:
    """A connection holding an unacknowledged message, in the state Celery's consumer
    leaves it after a lost broker: the channel's pool gone, its connection cleared."""
    conn = Connection(get_settings().broker_url, transport=transport)
    channel = conn.default_channel
    queue = Queue("broker-test", channel=channel)
    queue.declare()
    conn.Producer().publish({"n": 1}, routing_key="broker-test")
    assert queue.get(no_ack=False) is not None  # unacknowledged: restored on close
    channel._pool = None
    channel.connection.client = None
    return conn, channel


def test_kombus_own_transport_crashes_there() -> None:
    conn, channel = _torn_down(KombuTransport)
    with pytest.raises(AttributeError, match="hostname"):
        ignore_errors(conn, channel.close)


def test_ours_lets_the_close_carry_on() -> None:
    conn, channel = _torn_down(Transport)
    ignore_errors(conn, channel.close)  # the connection error is ignored; no crash
    # the message is not lost: still unacknowledged, for the visibility timeout to restore
    import redis

    assert redis.Redis.from_url(get_settings().broker_url).hlen("unacked") >= 1


def test_celery_uses_ours() -> None:
    from workers.app import app

    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, Transport)
