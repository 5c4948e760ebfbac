"""API fixtures: the real application (create_app) on a real server, reached over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.process.settings import Settings
from storage.client import RedisClient, is_cluster_url
from storage.cluster import ClusterRedis
from storage.multiplex import MultiplexedRedis
from tests.support import ADMIN_TOKEN, MASTER_KEY, WEBAUTHN_ORIGIN, Api


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    """Suite defaults: caches off (changes visible at once), cheap argon2, quiet logs."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "admin_token": ADMIN_TOKEN,
        "master_key": MASTER_KEY,
        "webauthn_origins": WEBAUTHN_ORIGIN,
        "cache_ttl_ms": 0,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "log_level": "warning",
        "uvloop": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(name="fast_redis")
async def _fast_redis(redis: aioredis.Redis, redis_url: str) -> AsyncIterator[RedisClient]:
    """The auto-pipelining connection the session store uses (``redis`` flushed the DB):
    one node's, or the cluster client on the test cluster."""
    connection = (ClusterRedis if is_cluster_url(redis_url) else MultiplexedRedis)(redis_url)
    yield connection
    await connection.close()


@pytest.fixture(name="settings")
def _settings(request: pytest.FixtureRequest, redis_url: str) -> Settings:
    marker = request.node.get_closest_marker("settings")
    return make_settings(redis_url, **(marker.kwargs if marker else {}))


@pytest.fixture(name="client")
async def _client(
    redis: aioredis.Redis, settings: Settings
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    from app.application import create_app  # late: pure tests must not need the whole app
    from app.process.bootstrap import bootstrap

    await bootstrap(settings, dev_mode=False)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        yield client


@pytest.fixture(name="api")
def _api(client: TestClient[web.Request, web.Application]) -> Api:
    return Api(client)


@pytest.fixture(name="instance_id")
async def _instance_id(
    redis: aioredis.Redis, client: TestClient[web.Request, web.Application]
) -> str:
    raw = await redis.hget("sessiond:instance", "id")
    assert isinstance(raw, bytes)
    return raw.decode()
