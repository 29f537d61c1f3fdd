"""The broker reached through Sentinel: what a `sentinel://` URL names, and the transport
Celery is given for it."""

from __future__ import annotations

from infra.redis import sentinels_of
from infra.settings import Settings


def test_a_sentinel_url_names_each_sentinel_and_the_database() -> None:
    url = "sentinel://10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://b3/2"
    assert sentinels_of(url) == ([("10.0.0.1", 26379), ("10.0.0.2", 26380), ("b3", 26379)], 2)
    assert sentinels_of("sentinel://127.0.0.1:5000") == ([("127.0.0.1", 5000)], 0)


def test_the_broker_goes_through_sentinel_only_when_its_url_says_so() -> None:
    assert Settings(broker_url="sentinel://h:26379/0").broker_via_sentinel
    assert not Settings(broker_url="redis://h:6379/1").broker_via_sentinel
    assert not Settings(redis_url="redis://h:6379/0").broker_via_sentinel  # broker = live Redis
