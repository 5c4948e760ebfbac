"""The Redis client factory: one pooled asyncio client per worker process."""

from __future__ import annotations

import redis.asyncio as aioredis

#: Connections per worker; concurrent requests beyond this queue for a free connection.
POOL_SIZE = 64


def connect(url: str) -> aioredis.Redis:
    """A client for ``url`` (redis://, rediss://, unix://) that returns bytes, never str."""
    return aioredis.Redis.from_url(
        url,
        decode_responses=False,
        max_connections=POOL_SIZE,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
        retry_on_timeout=False,
    )
