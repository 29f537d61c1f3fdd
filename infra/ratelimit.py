"""Fixed-window counters in Redis for rate limits."""

from __future__ import annotations

import time

import redis


def hit(client: redis.Redis, key: str, limit: int, window_s: int) -> int:
    """Count one hit; return 0 if allowed, else the seconds until the window resets."""
    window = int(time.time()) // window_s
    full_key = f"rl:{key}:{window}"
    pipe = client.pipeline()
    pipe.incr(full_key)
    pipe.expire(full_key, window_s + 1)
    count, _ = pipe.execute()
    if int(count) > limit:
        return window_s - int(time.time()) % window_s or 1
    return 0
