"""Redis clients: async for the API's hot path, sync for workers and tooling."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from infra.settings import get_settings


def make_async_redis() -> aioredis.Redis:
    """One client (and pool) per event loop: the API makes it in its lifespan."""
    return aioredis.Redis.from_url(
        get_settings().redis_url, decode_responses=True, health_check_interval=30
    )


@lru_cache
def get_sync_redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, decode_responses=True)
