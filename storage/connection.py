"""redis-py clients, for the rare paths that use redis-py's commands directly.

One pooled asyncio client per process for one node (``connect``), or redis-py's cluster
client for ``redis+cluster://`` seeds (``connect_any``).
"""

from __future__ import annotations

from urllib.parse import unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from storage.cluster import SCHEMES, parse_cluster_url

#: Either redis-py client: their command methods are the same.
PyClient = aioredis.Redis | RedisCluster

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


def connect_any(url: str, pool_size: int = 64) -> PyClient:
    """``connect`` for one node; redis-py's cluster client for ``redis+cluster://`` seeds."""
    if url.partition("://")[0] not in SCHEMES:
        return connect(url, pool_size)
    scheme, seeds, credentials = parse_cluster_url(url)
    user, _, password = credentials.rstrip("@").partition(":")
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in seeds],
        ssl=scheme == "rediss",
        username=unquote(user) or None,
        password=unquote(password) or None,
        max_connections=pool_size,
    )
