"""commit.lua's two guards, each on its own: the lease owner check and the fencing token.

tests/test_sessions_store.py moves the lease to another owner, which also bumps the fence,
so either guard alone refuses that commit. Here each guard is the only one that can.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from actors import machine, tokens
from actors.commands import CreateSession, Evidence, SetSession
from actors.errors import LeaseLost
from actors.permissions import Caller, Grant
from storage.sessions import RedisSessionStore

CREATOR = Caller(user_id="creator", grants=(Grant(roles=("IAM_OWNER",)),))


@pytest.fixture(name="store")
async def _store(fast_redis):
    return RedisSessionStore(
        fast_redis,
        instance_id="inst",
        retention_ms=60_000,
        partitions=4,
        stream_maxlen=1000,
        lease_ttl_ms=500,
    )


def _decide(state, command, now_ms: int):
    token = tokens.issue(tokens.SESSION_PREFIX, "s1", "tid", b"\x03" * 32)
    ctx = machine.Context(now_ms=now_ms, caller=CREATOR, token=token)
    events = machine.decide(state, command, Evidence(), ctx)
    return events, machine.evolve_all(state, events, session_id="s1", at_ms=now_ms)


async def test_a_lease_that_expired_unclaimed_no_longer_commits(store):
    """Nobody took the lease over, so the fence is unchanged: only the owner check refuses."""
    now = time.time_ns() // 1_000_000
    events, before = _decide(None, CreateSession(), now)
    await store.create(before, events, at_ms=now, creator_id="creator")
    held = await store.acquire("s1", "owner-a", 100)
    assert held is not None
    await asyncio.sleep(0.2)
    events, after = _decide(before, SetSession(metadata={"k": b"v"}), now)
    with pytest.raises(LeaseLost):
        await store.commit(
            held.lease, before, after, events, at_ms=now, creator_id="x", release=True
        )
    assert await store.read_state("s1") == before
