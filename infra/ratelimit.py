"""Fixed-window counters in Redis for rate limits."""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger("ridehail.fraud")


def _key(name: str, window_s: int) -> str:
    """The counter of `name` in the current fixed window of `window_s` seconds."""
    return f"rl:{name}:{int(time.time()) // window_s}"


def hit(client: redis.Redis, key: str, limit: int, window_s: int) -> int:
    """Count one hit; return 0 if allowed, else the seconds until the window resets."""
    full_key = _key(key, window_s)
    # one key, so one shard; the expiry is set before the first count, so no counter
    # outlives its window even if the second command never runs
    pipe = client.pipeline(transaction=False)
    pipe.set(full_key, 0, ex=window_s + 1, nx=True)
    pipe.incr(full_key)
    _, count = pipe.execute()
    if int(count) > limit:
        return window_s - int(time.time()) % window_s or 1
    return 0


class RedisVelocity:
    """The domain's `Velocity` port: fixed windows in Redis, every refusal logged."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def hit(self, what: str, subject: object, limit: int, window_s: int) -> int:
        wait = hit(self.client, f"{what}:{subject}", limit, window_s)
        if wait:
            log.warning("fraud: %s over %d per %d s for %s", what, limit, window_s, subject)
        return wait

    def count(self, what: str, subject: object, window_s: int) -> int:
        return int(self.client.get(_key(f"{what}:{subject}", window_s)) or 0)
