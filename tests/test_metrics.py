"""``GET /metrics``: what it counts, its optional token, and the sum over worker processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from actors.commands import CreateSession, SetSession
from actors.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    ValidationFailed,
)
from app.transports.metrics import rejection_reason
from storage import keys
from storage.outbox import GROUP, outbox_depth
from tests.processes import server
from tests.support import ADMIN_TOKEN, Api
from tests.test_actor import make_registry
from tests.test_session_cap import OWNER
from tests.test_sessions_api import _session_store
from tests.test_workers import _serving_workers

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample line, 0 if absent (labels in any order)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (Aborted("SESSION-lease", "Errors.Session.Busy"), "lease"),
        (ResourceExhausted("SESSION-mailbox", "Errors.Session.Busy"), "mailbox"),
        (ResourceExhausted("COMMAND-rateLimit", "Errors.RateLimit"), "rate_limit"),
        (FailedPrecondition("COMMAND-SFd3s", "Errors.User.Locked"), "lockout"),
        (ValidationFailed("invalid JSON"), "validation"),
        (InvalidArgument("SESSION-activeAt", "activeAt lies in the future"), "validation"),
        (NotFound("QUERY-SFeaa", "Errors.Session.NotExisting"), "not_found"),
        (Unavailable("STORAGE-down", "Errors.Storage.Down"), "storage"),
    ],
)
def test_rejections_have_a_small_fixed_vocabulary(error, reason: str):
    assert rejection_reason(error) == reason


async def _scrape(client: TestClient[web.Request, web.Application]) -> str:
    response = await client.get("/metrics")  # public: no SESSIOND_METRICS_TOKEN here
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return await response.text()


async def test_requests_rejections_actors_and_redis_are_counted(
    client: TestClient[web.Request, web.Application], api: Api
):
    # the metrics are the process's: other tests of this run counted before, so deltas
    before = await _scrape(client)
    created = await api.create({})
    assert created.status == 201
    assert (await api.get("no-such-session")).status == 404
    await asyncio.sleep(1.1)  # the live-actor gauge is refreshed once a second
    after = await _scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    requests = "sessiond_http_requests_total"
    assert grew(requests, route="/v2/sessions", method="POST", status="201") == 1
    assert grew(requests, route="/v2/sessions/{sessionId}", status="404") == 1
    latency = "sessiond_http_request_duration_seconds_count"
    assert grew(latency, route="/v2/sessions", method="POST") == 1
    assert grew("sessiond_rejections_total", reason="not_found") == 1
    scripts = "sessiond_redis_command_duration_seconds_count"
    # the first call of a script on a fresh Redis is EVAL (EVALSHA answered NOSCRIPT)
    assert grew(scripts, command="EVAL") + grew(scripts, command="EVALSHA") >= 1
    assert grew(scripts, command="HMGET") >= 1  # the GetSession
    # the create's events and index entries, applied by its own writer right after
    assert grew("sessiond_relay_lag_seconds_count", path="writer") == 1
    assert "sessiond_live_actors" in after
    assert "sessiond_outbox_depth 0.0" in after  # nothing queued in this test


@pytest.mark.settings(smtp_host="127.0.0.1")  # a channel; no delivery worker runs here
async def test_the_outbox_depth_counts_queued_messages(
    client: TestClient[web.Request, web.Application], api: Api
):
    user = await api.human()
    for _ in range(3):  # each queues one verification e-mail (sendCode)
        reply = await api.call("POST", f"/v2/users/{user}/password_reset", body={"sendLink": {}})
        assert reply.status == 200, reply.body
    text = await _scrape(client)
    assert sample(text, "sessiond_outbox_depth") == 3


@pytest.mark.settings(metrics_token="m" * 32)
async def test_a_metrics_token_is_required_when_set(
    client: TestClient[web.Request, web.Application],
):
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 32})
    assert wrong.status == 401
    right = await client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32})
    assert right.status == 200
    assert "sessiond_http_requests_total" in await right.text()


async def test_the_outbox_depth_counts_unread_and_unacknowledged_jobs(fast_redis, redis):
    assert await outbox_depth(fast_redis) == 0  # no stream yet
    ids = [await redis.xadd(keys.OUTBOX, {"job": str(n)}) for n in range(3)]
    assert await outbox_depth(fast_redis) == 3  # no delivery group yet: all waiting
    await redis.xgroup_create(keys.OUTBOX, GROUP, id="0")
    await redis.xreadgroup(GROUP, "w1", {keys.OUTBOX: ">"}, count=1)
    assert await outbox_depth(fast_redis) == 3  # one read and pending, two unread
    await redis.xack(keys.OUTBOX, GROUP, ids[0])
    assert await outbox_depth(fast_redis) == 2  # delivered and acknowledged: gone


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    # a new connection per request, so the kernel spreads them over the workers
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        yield http


@pytest.mark.slow
async def test_two_workers_metrics_are_summed_whichever_answers(redis, redis_url, http):
    with server(redis_url, workers=2) as running:
        for _ in range(40):
            async with http.post(f"{running.url}/v2/sessions", json={}, headers=AUTH) as reply:
                assert reply.status == 201
        totals = set()
        for _ in range(8):  # scrapes land on either worker; each sees both workers' counts
            async with http.get(f"{running.url}/metrics") as reply:
                text = await reply.text()
            totals.add(
                sample(
                    text,
                    "sessiond_http_requests_total",
                    route="/v2/sessions",
                    method="POST",
                    status="201",
                )
            )
        assert totals == {40.0}
        # a worker killed (and replaced by the supervisor) keeps its counts in the sum
        os.kill(_serving_workers(running, 2)[0], signal.SIGKILL)
        _serving_workers(running, 2)
        deadline = time.monotonic() + 10
        while True:
            async with http.get(f"{running.url}/metrics") as reply:
                text = await reply.text()
            if reply.status == 200 or time.monotonic() > deadline:
                break
        assert (
            sample(text, "sessiond_http_requests_total", route="/v2/sessions", status="201") == 40
        )


async def test_an_actor_waiting_for_a_held_lease_reports_each_wait(fast_redis):
    waits: list[int] = []
    registry = make_registry(fast_redis, on_lease_wait=lambda: waits.append(1))
    store = _session_store(fast_redis)
    try:
        created = await registry.create(CreateSession(), user=None, caller=OWNER)
        assert created.state is not None
        session_id = created.state.id
        # another writer (another worker, say) holds the lease for 300 ms
        assert await store.acquire(session_id, "another-writer", 300) is not None
        outcome = await registry.ask(
            session_id, SetSession(metadata={"k": b"v"}), user=None, caller=OWNER
        )
        assert outcome.state is not None
        assert outcome.state.metadata == {"k": b"v"}  # written once the lease expired
        assert len(waits) >= 1
    finally:
        await registry.close()
