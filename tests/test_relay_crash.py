"""A worker SIGKILLed between its commits and their relay, under write load, on a cluster.

On one node a commit and its relay pass leave in the same write, so a kill cannot land
between them (the repair of an entry left anyway is shown in ``test_relay.py``); on a Redis
Cluster the pass is one call per slot, after the commit. Two workers on the real 3-primary
cluster serve a stream of creates (with a user check) and metadata updates; the test
SIGKILLs the workers mid-load until a kill left commits unrelayed (their entries still
recorded). A fresh server's repair pass then applies them: within
``CLAIM_MS + REPAIR_INTERVAL_S`` (plus slack for the start) every entry is gone, every live
session is in the indexes its own state names, and every session's events are in its
partition stream exactly once, in order. Every acknowledged write is there.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiohttp
import pytest

from storage import keys, relay
from storage.connection import connect_any
from tests.processes import Server, server
from tests.support import ADMIN_TOKEN, b64, session_history
from tests.test_workers import _human, _serving_workers, _workers

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BOUND_S = relay.CLAIM_MS / 1000 + relay.REPAIR_INTERVAL_S


async def _load(
    http: aiohttp.ClientSession, base: str, user: str, acknowledged: dict[str, int], stop: Any
) -> None:
    """Create a session, then update it, until ``stop``; counts the answered updates."""
    while not stop.is_set():
        try:
            body = {"checks": {"user": {"userId": user}}}
            async with http.post(f"{base}/v2/sessions", json=body, headers=AUTH) as response:
                if response.status != 201:
                    continue
                sid = (await response.json())["sessionId"]
            acknowledged[sid] = 0
            for n in range(3):
                update = {"metadata": {f"k{n}": b64("v")}}
                url = f"{base}/v2/sessions/{sid}"
                async with http.patch(url, json=update, headers=AUTH) as response:
                    if response.status == 200:
                        acknowledged[sid] = n + 1
        except (TimeoutError, aiohttp.ClientError):
            return  # the server was killed


def _crash(running: Server) -> None:
    """SIGKILL every worker and the supervisor, so no shutdown code runs anywhere.

    The workers have their own process group (a terminal's Ctrl-C reaches only the parent),
    and a dead parent's workers get SIGTERM and drain: so the supervisor is frozen first
    (it restarts nothing), the workers are killed, then the supervisor.
    """
    supervisor = running.proc.pid
    workers = _workers(supervisor)
    os.kill(supervisor, signal.SIGSTOP)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    os.kill(supervisor, signal.SIGKILL)
    running.proc.wait(5)


async def _unrelayed(redis: Any) -> list[bytes]:
    return [key async for key in redis.scan_iter(match="sess:{*}:relay", count=1000)]


async def _kill_mid_load(redis: Any, redis_url: str, user_of: list[str]) -> dict[str, int]:
    """Run the load on two workers and SIGKILL them; until a kill leaves entries behind."""
    acknowledged: dict[str, int] = {}
    for _ in range(8):
        acknowledged |= await _one_kill(redis_url, user_of)
        if await _unrelayed(redis):
            return acknowledged
    raise AssertionError("no kill landed between a commit and its relay in eight tries")


async def _one_kill(redis_url: str, user_of: list[str]) -> dict[str, int]:
    acknowledged: dict[str, int] = {}
    with server(redis_url, workers=2) as running:
        _serving_workers(running, 2)
        async with aiohttp.ClientSession() as http:
            if not user_of:
                user_of.append(await _human(http, running.url))
            stop = asyncio.Event()
            loads = [
                asyncio.create_task(_load(http, running.url, user_of[0], acknowledged, stop))
                for _ in range(48)
            ]
            await asyncio.sleep(1.5)
            _crash(running)
            stop.set()
            await asyncio.gather(*loads)
    return acknowledged


async def _check_consistent(redis: Any, user: str, acknowledged: dict[str, int]) -> None:
    """Walk every session: its indexes and its events agree with its own state."""
    sessions = [
        key.decode()[len("sess:{") : -1]
        async for key in redis.scan_iter(match="sess:{*}", count=1000)
        if key.endswith(b"}")
    ]
    assert set(acknowledged) <= set(sessions)  # no acknowledged create lost
    for sid in sessions:
        seq = int(await redis.hget(keys.session(sid), "seq") or 0)
        history = await session_history(redis, sid)
        published = [int(fields[b"sequence"]) for fields in history]
        assert published == list(range(1, seq + 1)), (sid, published, seq)  # once, in order
        assert await redis.zscore(keys.SESSIONS_BY_CREATION, sid) is not None, sid
        assert await redis.zscore(keys.sessions_of_user(user), sid) is not None, sid
    for sid, updates in acknowledged.items():
        doc = await redis.hget(keys.session(sid), "doc")
        for n in range(updates):
            assert f"k{n}".encode() in doc, (sid, n)  # no acknowledged update lost


async def test_a_kill_between_commit_and_relay_is_repaired_within_the_bound(cluster_url: str):
    redis = connect_any(cluster_url)  # redis-py's cluster client: scans every primary
    try:
        await _killed_and_repaired(redis, cluster_url)
    finally:
        await redis.aclose()


async def _killed_and_repaired(redis: Any, redis_url: str) -> None:
    user_of: list[str] = []
    acknowledged = await _kill_mid_load(redis, redis_url, user_of)
    left = len(await _unrelayed(redis))
    assert left > 0
    started = time.monotonic()
    with server(redis_url, workers=1):
        while await _unrelayed(redis):
            assert time.monotonic() - started < BOUND_S + 10, f"{left} entries not repaired"
            await asyncio.sleep(0.2)
        repaired_in = time.monotonic() - started
    assert repaired_in < BOUND_S + 10, repaired_in
    await _check_consistent(redis, user_of[0], acknowledged)
