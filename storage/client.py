"""Which Redis client a URL names: one node (``MultiplexedRedis``) or a cluster (``ClusterRedis``).

Both offer the same calls (``execute``, ``execute_many``, ``eval_script``, ``eval_many``,
``eval_chain``, ``close``), so the stores take either; a cluster client also says
``splits_by_slot`` and lists each primary's slots, which the relay and the many-key reads ask.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeAlias

from storage.cluster import SCHEMES, ClusterRedis
from storage.multiplex import MultiplexedRedis

RedisClient: TypeAlias = MultiplexedRedis | ClusterRedis


def is_cluster_url(url: str) -> bool:
    return url.partition("://")[0] in SCHEMES


def open_client(
    url: str,
    *,
    timeout_s: float,
    circuit_failures: int,
    circuit_open_s: float,
    observe: Callable[[str, float], None] | None = None,
    trace: Callable[[str], AbstractContextManager[None]] | None = None,
    wait_replicas: int = 0,
    wait_timeout_ms: int = 200,
) -> RedisClient:
    """The auto-pipelining client for ``url``: ``redis+cluster://`` seeds, or one node."""
    kind = ClusterRedis if is_cluster_url(url) else MultiplexedRedis
    return kind(
        url,
        timeout_s=timeout_s,
        circuit_failures=circuit_failures,
        circuit_open_s=circuit_open_s,
        observe=observe,
        trace=trace,
        wait_replicas=wait_replicas,
        wait_timeout_ms=wait_timeout_ms,
    )
