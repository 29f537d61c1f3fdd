"""Redis clients: async for the API's hot path, sync for workers and tooling."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from infra.settings import get_settings

#: connections one API process holds to Redis; a request beyond them waits in line
ASYNC_POOL_SIZE = 64
#: how long a request waits for a connection before it fails (503, never a 500)
ASYNC_POOL_WAIT_S = 10.0


def make_async_redis(pool_size: int = ASYNC_POOL_SIZE) -> aioredis.Redis:
    """One client (and pool) per event loop: the API makes it in its lifespan. The pool is
    bounded and blocking: a burst of requests (a reconnect storm) queues for connections
    instead of failing for want of one."""
    pool = aioredis.BlockingConnectionPool.from_url(
        get_settings().redis_url,
        max_connections=pool_size,
        timeout=ASYNC_POOL_WAIT_S,
        decode_responses=True,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


async def ping_broker(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
    finally:
        await client.aclose()


@lru_cache
def get_sync_redis() -> redis.Redis:
    return redis.Redis.from_url(get_settings().redis_url, decode_responses=True)
