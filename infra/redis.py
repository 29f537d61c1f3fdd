"""Redis clients: async for the API's hot path, sync for workers and tooling."""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.sentinel

from infra.settings import get_settings

#: connections one API process holds to Redis; a request beyond them waits in line
ASYNC_POOL_SIZE = 64
#: how long a request waits for a connection before it fails (503, never a 500)
ASYNC_POOL_WAIT_S = 10.0
#: connections one API process may open to each node of a cluster
CLUSTER_NODE_CONNECTIONS = 1024


def make_async_redis(pool_size: int = ASYNC_POOL_SIZE) -> Any:
    """One client (and pool) per event loop: the API makes it in its lifespan. The pool is
    bounded and blocking: a burst of requests (a reconnect storm) queues for connections
    instead of failing for want of one. On a cluster, redis-py's own cluster client (it
    follows MOVED and failovers); its pools do not block, so each node's is made large
    enough for a reconnect storm's backlog reads (the pings share pipelines)."""
    settings = get_settings()
    if settings.redis_cluster:
        return aiocluster.RedisCluster(
            startup_nodes=[
                aiocluster.ClusterNode(h, p) for h, p in cluster_nodes(settings.redis_url)
            ],
            decode_responses=True,
            max_connections=CLUSTER_NODE_CONNECTIONS,
            health_check_interval=30,
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        get_settings().redis_url,
        max_connections=pool_size,
        timeout=ASYNC_POOL_WAIT_S,
        decode_responses=True,
        health_check_interval=30,
    )
    return aioredis.Redis(connection_pool=pool)


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The nodes a cluster's URL names: `redis://h1:p1,redis://h2:p2,...` (several, so a
    process starting while one of them is down still finds the cluster)."""
    nodes = []
    for part in url.split(","):
        where = urlparse(part.strip() if "://" in part else f"redis://{part.strip()}")
        nodes.append((where.hostname or "127.0.0.1", where.port or 6379))
    return nodes


async def initialize(client: Any) -> None:
    """Learn a cluster's slots now, not at the first request (a single Redis: nothing)."""
    if isinstance(client, aiocluster.RedisCluster):
        await client.initialize()


def sentinels_of(url: str) -> tuple[list[tuple[str, int]], int]:
    """The sentinels a `sentinel://h1:p1;sentinel://h2:p2/db` URL names, and the db."""
    hosts: list[tuple[str, int]] = []
    db = 0
    for part in url.split(";"):
        where = urlparse(part)
        hosts.append((where.hostname or "127.0.0.1", where.port or 26379))
        if where.path.strip("/"):
            db = int(where.path.strip("/"))
    return hosts, db


async def ping_broker(url: str) -> None:
    """The broker's primary answers (through the sentinels, for a `sentinel://` URL)."""
    asked: list[aioredis.Redis] = []  # the sentinels' clients, closed with the broker's
    if url.startswith("sentinel://"):
        hosts, db = sentinels_of(url)
        sentinel = aiosentinel.Sentinel(hosts, socket_timeout=2)
        asked = list(sentinel.sentinels)
        client = sentinel.master_for(get_settings().broker_sentinel_master, db=db)
    else:
        client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
    finally:
        for one in [client, *asked]:
            await one.aclose()


@lru_cache
def get_broker_redis() -> redis.Redis:
    """The broker's Redis, for what reads its queues (their depths)."""
    settings = get_settings()
    if settings.broker_via_sentinel:
        hosts, db = sentinels_of(settings.broker_url)
        return redis.sentinel.Sentinel(hosts, socket_timeout=2).master_for(
            settings.broker_sentinel_master, db=db, decode_responses=True
        )
    return redis.Redis.from_url(settings.broker_url, decode_responses=True)


@lru_cache
def get_sync_redis() -> Any:
    """Live state's Redis for workers and tooling (a cluster client on a cluster)."""
    settings = get_settings()
    if settings.redis_cluster:
        return redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode(h, p) for h, p in cluster_nodes(settings.redis_url)
            ],
            decode_responses=True,
        )
    return redis.Redis.from_url(settings.redis_url, decode_responses=True)
