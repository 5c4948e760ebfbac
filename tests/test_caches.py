"""The per-worker caches, switched on: how stale a worker may be, and for how long.

docs/compat.md: "a PAT's caller and a user's read-time view (names, password change) are
cached per worker for at most ``SESSIOND_CACHE_TTL_MS``; writes in the same worker invalidate
at once". The rest of the suite runs with the caches off; here two apps (``create_app``, as
two workers would) share one Redis with the caches on, and the caches' clock is driven
(``tests.driven.drive_caches``) so "within the TTL" and "after it" do not depend on how fast
the machine is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from tests.apifixtures import make_settings
from tests.driven import DrivenMonotonic, drive_caches
from tests.support import Api

TTL_MS = 10_000
NEW_PASSWORD = "An0ther-Passw0rd!"


@pytest.fixture(name="caches")
def _caches(monkeypatch: pytest.MonkeyPatch) -> DrivenMonotonic:
    return drive_caches(monkeypatch)


@pytest.fixture(name="workers")
async def _workers(
    redis: aioredis.Redis, redis_url: str, caches: DrivenMonotonic
) -> AsyncIterator[tuple[Api, Api]]:
    """Two apps, each with its own caches, on the same Redis: worker A and worker B."""
    from app.application import create_app
    from app.process.bootstrap import bootstrap

    settings = make_settings(redis_url, cache_ttl_ms=TTL_MS)
    await bootstrap(settings, dev_mode=False)
    async with (
        TestClient(TestServer(create_app(settings), host="127.0.0.1")) as first,
        TestClient(TestServer(create_app(settings), host="127.0.0.1")) as second,
    ):
        yield Api(first), Api(second)


async def _status(api: Api, token: str) -> tuple[int, str]:
    """What a bearer gets: ListSessions needs nothing but an authenticated caller."""
    reply = await api.search({}, token)
    return reply.status, reply.error_id if reply.status != 200 else ""


OK = (200, "")
REFUSED = (401, "AUTH-7fs1e")


async def test_a_password_change_reaches_another_workers_bearer_check_within_the_ttl(
    workers: tuple[Api, Api], caches: DrivenMonotonic
):
    a, b = workers
    user = await a.human()
    token = (await a.session_for(user)).body["sessionToken"]
    assert [await _status(a, token), await _status(b, token)] == [OK, OK]  # both cached it
    changed = await a.call(
        "POST", f"/v2/users/{user}/password", body={"newPassword": {"password": NEW_PASSWORD}}
    )
    assert changed.status == 200, changed.body
    assert await _status(a, token) == REFUSED  # the worker that wrote forgot its view at once
    caches.advance(TTL_MS - 1000)
    assert await _status(b, token) == OK  # B still has the view from before the change ...
    caches.advance(1001)
    assert await _status(b, token) == REFUSED  # ... for at most the TTL


async def test_a_deactivated_machine_users_pat_works_on_another_worker_for_at_most_the_ttl(
    workers: tuple[Api, Api], caches: DrivenMonotonic
):
    a, b = workers
    robot, pat = await a.machine_with_pat([])
    assert await _status(b, pat) == OK  # B cached the caller
    assert (await a.call("POST", f"/v2/users/{robot}/deactivate", body={})).status == 200
    caches.advance(TTL_MS - 1000)
    assert await _status(b, pat) == OK
    caches.advance(1001)
    assert await _status(b, pat) == REFUSED


async def test_the_worker_that_deactivated_a_machine_user_refuses_its_pat_at_once(
    workers: tuple[Api, Api],
):
    a, _ = workers
    robot, pat = await a.machine_with_pat([])
    assert await _status(a, pat) == OK  # A cached the caller
    assert (await a.call("POST", f"/v2/users/{robot}/deactivate", body={})).status == 200
    assert await _status(a, pat) == REFUSED  # "writes in the same worker invalidate at once"
