"""The service on a real 3-primary Redis Cluster: ``SESSIOND_REDIS_URL=redis+cluster://...``.

Two worker processes serve users, password checks, sessions (ZITADEL's and PingOne's API),
listings and deletions, with every script on one slot (the cluster refuses any other);
their events reach the partition streams on whichever node holds each, and the consumer
reads them there.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from storage import keys
from storage.cluster import ClusterRedis
from storage.event_tail import TailOptions, tail
from tests.processes import logged_server
from tests.support import Api

pytestmark = pytest.mark.slow


@pytest.fixture(name="api")
async def _api(cluster_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    with logged_server(cluster_url, tmp_path / "log", workers=2, log_level="info") as running:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            yield Api(http)  # type: ignore[arg-type]  # the same request() as a test client
        await asyncio.sleep(3)  # a relay repair pass over every primary runs meanwhile
        lines = running.lines()
        assert sum(line["event"] == "request" for line in lines) >= 4  # the log is read
        assert [line for line in lines if line["level"] in ("warning", "error")] == []


async def test_a_sign_in_and_a_sessions_life_on_a_cluster(api: Api, cluster_url: str):
    user = await api.human("ada")
    created = await api.session_for(user)
    sid = created.body["sessionId"]
    for n in range(3):  # over both workers: each write takes the session's lease
        changed = await api.set(sid, {"metadata": {f"k{n}": "dg=="}})
        assert changed.status == 200, changed.body
    read = await api.get(sid)
    assert read.status == 200, read.body
    assert set(read.body["session"]["metadata"]) == {"k0", "k1", "k2"}
    assert read.body["session"]["factors"]["password"]
    by_name = await api.create({"checks": {"user": {"loginName": "ADA"}}})
    assert by_name.status == 201, by_name.body
    listed = await api.search({"queries": [{"userIdQuery": {"id": user}}]})
    assert listed.status == 200, listed.body
    found = {s["id"] for s in listed.body["sessions"]}
    assert found == {sid, by_name.body["sessionId"]}
    taken = await api.call(
        "POST",
        "/v2/users/human",
        body={
            "username": "Ada",
            "profile": {"givenName": "A", "familyName": "B"},
            "email": {"email": "a@example.com"},
        },
    )
    assert taken.status == 409, taken.body  # one username, per key, across the cluster
    ended = await api.delete(sid)
    assert ended.status == 200, ended.body
    assert (await api.get(sid)).status == 404

    seen: list[dict[str, str]] = []
    opts = TailOptions(group="t", consumer="c", from_start=True, until_idle=True, block_ms=300)
    await tail(cluster_url, 16, opts, lambda _, fields: seen.append(fields))
    mine = [e["type"] for e in seen if e["aggregateId"] == sid]
    assert mine[0] == "session.added"
    assert mine[-1] == "session.terminated"
    assert "session.metadata.set" in mine
    assert any(e["aggregateId"] == user and e["type"] == "user.human.added" for e in seen)


async def test_pingone_sessions_on_a_cluster(api: Api, cluster_url: str):
    user = await api.human()
    client: Any = ClusterRedis(cluster_url)
    try:
        env = (await client.execute("HGET", keys.INSTANCE, "id")).decode()
    finally:
        await client.close()
    token = secrets.token_urlsafe(24)
    body = {
        "activeAt": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "idleTimeoutInMinutes": 60,
        "token": token,
        "user": {"id": user},
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    }
    created = await api.call("POST", f"/v1/environments/{env}/sessions", body=body)
    assert created.status == 201, created.body
    again = await api.call("POST", f"/v1/environments/{env}/sessions", body=body)
    assert again.status == 400, again.body  # the token's key names one session
    listed = await api.call("GET", f"/v1/environments/{env}/users/{user}/sessions")
    assert listed.status == 200, listed.body
    assert [s["id"] for s in listed.body["_embedded"]["sessions"]] == [created.body["id"]]
