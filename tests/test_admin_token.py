"""The configured admin token can be rotated: a restart with a new value replaces the old one.

Every start ensures SESSIOND_ADMIN_TOKEN as the PAT of the IAM_OWNER machine user "admin";
a different value (of any shape) replaces the previous one, which stops working at once.
"""

from __future__ import annotations

import msgspec
import structlog
from aiohttp.test_utils import TestClient, TestServer

from app.application import create_app
from app.process.bootstrap import bootstrap
from tests.apifixtures import make_settings

OLD = "first-admin-token-" + "a" * 30
NEW = "second-admin-token-" + "b" * 30


async def _status_with(settings, token: str) -> int:
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        response = await client.post(
            "/v2/sessions/search", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        return response.status


async def test_a_new_admin_token_replaces_the_old_one(redis, redis_url):
    first = make_settings(redis_url, admin_token=OLD)
    await bootstrap(first, dev_mode=False)
    assert await _status_with(first, OLD) == 200

    second = msgspec.structs.replace(first, admin_token=NEW)
    with structlog.testing.capture_logs() as logs:
        await bootstrap(second, dev_mode=False)
    assert await _status_with(second, NEW) == 200
    assert await _status_with(second, OLD) == 401
    rotated = [entry for entry in logs if "rotated" in entry["event"]]
    assert len(rotated) == 1
    assert OLD not in str(logs)
    assert NEW not in str(logs)


async def test_a_pat_shaped_admin_token_replaces_the_previous_one(redis, redis_url):
    old, new = "p.adminone." + "s" * 43, "p.admintwo." + "t" * 43
    first = make_settings(redis_url, admin_token=old)
    await bootstrap(first, dev_mode=False)
    second = msgspec.structs.replace(first, admin_token=new)
    await bootstrap(second, dev_mode=False)
    assert await _status_with(second, new) == 200
    assert await _status_with(second, old) == 401
    assert await redis.exists("pat:{adminone}") == 0


async def test_restarting_with_the_same_token_changes_nothing(redis, redis_url):
    settings = make_settings(redis_url, admin_token=OLD)
    await bootstrap(settings, dev_mode=False)
    with structlog.testing.capture_logs() as logs:
        await bootstrap(settings, dev_mode=False)
    assert not [entry for entry in logs if "rotated" in entry["event"]]
    assert await _status_with(settings, OLD) == 200
