"""The per-user cap through PingOne's API over two real worker processes.

40 concurrent creates for one user, spread over two ``python -m app`` workers by the kernel,
with a cap of 10: exactly 10 sessions remain, the other 30 were ended (each with an
``evicted`` termination event), and every index agrees. Keycloak's limiter counted, then
created (``peers.md`` §C); here the count and the eviction are one commit script.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from storage import keys
from tests.processes import server
from tests.support import ADMIN_TOKEN, session_history
from tests.test_workers import BUSY_CPU_NS, _cpu_ns, _human, _serving_workers

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CAP, CREATES = 10, 40


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    # a new connection per request, so the kernel spreads the creates over both workers
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield http


def _body(user_id: str, n: int) -> dict[str, Any]:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=CREATES - n)).isoformat()
    return {
        "activeAt": at.replace("+00:00", "Z"),
        "idleTimeoutInMinutes": 60,
        "lastSignOn": {"authenticators": ["pwd"], "remoteIp": "192.0.2.1"},
        "token": secrets.token_urlsafe(24),
        "user": {"id": user_id},
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    }


async def _create(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> str:
    async with http.post(url, json=body, headers=AUTH) as response:
        reply = await response.json(content_type=None)
        assert response.status == 201, reply
        return str(reply["id"])


async def _terminated_by_eviction(redis: Any, session_id: str) -> bool:
    entries = await session_history(redis, session_id)
    values = [b" ".join(fields.values()) for fields in entries]
    return any(b"session.terminated" in v and b"evicted" in v for v in values)


async def test_forty_creates_over_two_workers_leave_exactly_the_cap(redis, redis_url, http):
    with server(redis_url, workers=2, max_sessions_per_user=CAP) as running:
        workers = _serving_workers(running, 2)
        user = await _human(http, running.url)
        env = (await redis.hget(keys.INSTANCE, "id")).decode()
        url = f"{running.url}/v1/environments/{env}/sessions"
        cpu_before = [_cpu_ns(pid) for pid in workers]
        created = await asyncio.gather(
            *(_create(http, url, _body(user, n)) for n in range(CREATES))
        )
        cpu_used = [_cpu_ns(pid) - before for pid, before in zip(workers, cpu_before, strict=True)]
        assert all(used > BUSY_CPU_NS for used in cpu_used), cpu_used  # both workers created
        assert len(set(created)) == CREATES
        listing_url = f"{running.url}/v1/environments/{env}/users/{user}/sessions"
        async with http.get(listing_url, headers=AUTH) as response:
            listed = await response.json(content_type=None)
        kept = {session["id"] for session in listed["_embedded"]["sessions"]}
        assert listed["count"] == len(kept) == CAP
        active = {m.decode() for m in await redis.zrange(keys.active_sessions_of_user(user), 0, -1)}
        by_user = {m.decode() for m in await redis.zrange(keys.sessions_of_user(user), 0, -1)}
        assert active == by_user == kept
        assert await redis.zcard(keys.SESSIONS_TO_EVICT) == 0  # every eviction finished
        ended = set(created) - kept
        assert len(ended) == CREATES - CAP
        for session_id in ended:
            assert await _terminated_by_eviction(redis, session_id), session_id
