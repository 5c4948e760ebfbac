"""The Redis client factory: one pooled asyncio client per worker process."""

from __future__ import annotations

import redis.asyncio as aioredis

#: How long a request may wait for a free pooled connection before it is a 503.
POOL_WAIT_S = 5.0


def connect(url: str, pool_size: int = 64) -> aioredis.Redis:
    """A client for ``url`` (redis://, rediss://, unix://) that returns bytes, never str.

    The pool blocks: when all ``pool_size`` connections are busy, further commands wait up
    to ``POOL_WAIT_S`` for one instead of failing at once (redis-py's default pool raises
    "Too many connections", which would turn a burst of load into 503s).
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns (and closes) the pool
