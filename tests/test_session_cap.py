"""The per-user session cap against a real server: never more than the cap, under a race.

Creates for one user race through one registry (concurrent scripts on one Redis); the cap
op of the commit script picks the least recently active others, and the registry ends each
through its actor before answering. The cross-process race over the HTTP facade is part of
the PingOne API's tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from msgspec.structs import replace

from actors.commands import (
    Checks,
    CreateSession,
    DeleteSession,
    SetSession,
    SignOnReport,
    UserCheck,
)
from actors.errors import AlreadyExists
from actors.model import Location, UserRef
from actors.permissions import Caller, Grant
from actors.registry import SessionRegistry
from app.services.clock import SystemClock
from storage import keys
from storage.sessions import RedisSessionStore
from tests.driven import DrivenClock
from tests.support import Api, b64
from tests.test_actor import make_registry
from tests.test_sessions_api import _at, _clock, _session_store, _ts

__all__ = ["_clock"]  # the driven-clock fixture, shared

#: A create of one of alice's sessions, checked by user id.
ALICE_CHECK = CreateSession(checks=Checks(user=UserCheck(user_id="alice")))
OWNER = Caller(user_id="admin", grants=(Grant(roles=("IAM_OWNER",)),))
ALICE = UserRef(
    id="alice", org_id="org1", state="USER_STATE_ACTIVE", login_name="a", display_name="A"
)


def capped_registry(fast_redis, cap: int) -> tuple[SessionRegistry, RedisSessionStore]:
    """A registry whose store caps each user's sessions, and a reader of what it stored."""
    return make_registry(fast_redis, max_sessions_per_user=cap), _session_store(fast_redis)


async def test_forty_racing_creates_leave_exactly_the_cap(fast_redis, redis):
    registry, store = capped_registry(fast_redis, cap=10)
    command = CreateSession(checks=Checks(user=UserCheck(user_id="alice")))
    try:
        outcomes = await asyncio.gather(
            *(registry.create(command, user=ALICE, caller=OWNER) for _ in range(40))
        )
    finally:
        await registry.close()
    created = [outcome.state.id for outcome in outcomes if outcome.state is not None]
    assert len(set(created)) == 40
    active = [
        member.decode()
        for member in await redis.zrange(keys.active_sessions_of_user("alice"), 0, -1)
    ]
    assert len(active) == 10
    states = await store.read_states(created)
    live = {state.id for state in states if state is not None}
    assert live == set(active)  # the 30 others were ended, the 10 kept are live
    assert await redis.zcard(keys.SESSIONS_TO_EVICT) == 0  # every eviction finished
    user_index = {m.decode() for m in await redis.zrange(keys.sessions_of_user("alice"), 0, -1)}
    assert user_index == live


async def test_a_crash_before_the_eviction_is_repaired_by_the_sweep(fast_redis, redis):
    registry, store = capped_registry(fast_redis, cap=1)
    command = CreateSession(checks=Checks(user=UserCheck(user_id="alice")))
    first = await registry.create(command, user=ALICE, caller=OWNER)
    assert first.state is not None
    # the second create's eviction is lost, as if the worker died right after its commit
    original = registry.end_evicted

    async def crash(session_id: str) -> bool:
        return False

    registry.end_evicted = crash  # type: ignore[method-assign]
    await registry.create(command, user=ALICE, caller=OWNER)
    assert (await store.read_states([first.state.id]))[0] is not None
    registry.end_evicted = original  # type: ignore[method-assign]
    try:
        assert await registry.end_pending_evictions(before_ms=2**62) == 1
    finally:
        await registry.close()
    assert (await store.read_states([first.state.id]))[0] is None
    assert await redis.zcard(keys.SESSIONS_TO_EVICT) == 0


async def _indexed(redis, count: int) -> None:
    """Wait for the relay to index ``count`` of alice's sessions (uncapped: after the answer)."""
    deadline = asyncio.get_running_loop().time() + 10
    while await redis.zcard(keys.sessions_of_user("alice")) < count:
        assert asyncio.get_running_loop().time() < deadline, "the relay never indexed them"
        await asyncio.sleep(0.01)


async def _create_a_millisecond_apart(registry: SessionRegistry, command: CreateSession):
    """A create whose activity score (ms) differs from the last write's, so order is known."""
    await asyncio.sleep(0.003)
    return await registry.create(command, user=ALICE, caller=OWNER)


async def _three_uncapped(fast_redis, redis) -> tuple[list[str], RedisSessionStore]:
    """Three of alice's sessions created (and indexed) a millisecond apart, without a cap."""
    uncapped, store = capped_registry(fast_redis, cap=0)
    try:
        earlier = [await _create_a_millisecond_apart(uncapped, ALICE_CHECK) for _ in range(3)]
    finally:
        await uncapped.close()
    await _indexed(redis, 3)
    return [outcome.state.id for outcome in earlier if outcome.state is not None], store


async def _live_and_indexed_as_active(store: RedisSessionStore, redis, ids: list[str]) -> set[str]:
    """The sessions among ``ids`` still live, checked to be exactly the activity index."""
    states = await store.read_states(ids)
    live = {state.id for state in states if state is not None}
    active = {m.decode() for m in await redis.zrange(keys.active_sessions_of_user("alice"), 0, -1)}
    assert active == live
    return live


async def test_without_a_cap_no_activity_index_and_a_cap_switched_on_counts_every_session(
    fast_redis, redis
):
    ids, store = await _three_uncapped(fast_redis, redis)
    assert await redis.exists(keys.active_sessions_of_user("alice")) == 0  # nobody reads it
    capped, _ = capped_registry(fast_redis, cap=2)
    try:
        newest = await capped.create(ALICE_CHECK, user=ALICE, caller=OWNER)
    finally:
        await capped.close()
    assert newest.state is not None
    live = await _live_and_indexed_as_active(store, redis, [*ids, newest.state.id])
    assert live == {ids[2], newest.state.id}  # the two oldest of four, created uncapped, ended


async def test_a_cap_switched_on_counts_every_session_when_activity_reaches_the_index_first(
    fast_redis, redis
):
    ids, store = await _three_uncapped(fast_redis, redis)
    capped, _ = capped_registry(fast_redis, cap=2)
    try:  # a write on the oldest is activity: its update is the first op on the index
        touch = SetSession(metadata={"k": b"v"})
        await asyncio.sleep(0.003)  # its activity score differs from the newest earlier one
        await capped.ask(ids[0], touch, user=None, caller=OWNER)
        newest = await _create_a_millisecond_apart(capped, ALICE_CHECK)
    finally:
        await capped.close()
    assert newest.state is not None
    live = await _live_and_indexed_as_active(store, redis, [*ids, newest.state.id])
    assert live == {ids[0], newest.state.id}  # the two least recently active of four ended


@pytest.mark.settings(max_sessions_per_user=2)
async def test_over_the_http_api_a_third_session_ends_the_least_recently_active(api: Api):
    user = await api.human()
    first, second, third = [
        (await api.create({"checks": {"user": {"userId": user}}})).body["sessionId"]
        for _ in range(3)
    ]
    assert (await api.get(first)).status == 404  # ended by the cap, before the answer
    assert (await api.get(second)).status == 200
    assert (await api.get(third)).status == 200


@pytest.mark.settings(default_idle_timeout="2s")
async def test_the_default_idle_timeout_ends_an_unused_session(clock: DrivenClock, api: Api):
    sid = (await api.create({"lifetime": "3600s"})).body["sessionId"]
    expires = (await api.get(sid)).body["session"]["expirationDate"]
    ends_in = _ts(expires) - _at(clock)  # the earlier end wins
    assert dt.timedelta(seconds=1.5) < ends_in <= dt.timedelta(seconds=2)
    clock.advance(1_500)
    await api.set(sid, {"metadata": {"k": b64("v")}})  # a write is activity
    clock.advance(1_500)
    assert (await api.get(sid)).status == 200
    clock.advance(2_001)
    reply = await api.set(sid, {"metadata": {"k": b64("w")}})
    assert reply.status == 400  # idle for longer than the timeout: expired
    assert reply.body["details"][0]["id"] == "COMMAND-Hkl3d"


def pingone_create(token_hash: str) -> CreateSession:
    report = SignOnReport(
        active_ms=SystemClock().now_ms(),
        location=Location(at_ms=0, remote_ip="10.0.0.1"),
        idle_timeout_ms=3_600_000,
        st_token_hash=token_hash,
    )
    return CreateSession(checks=Checks(user=UserCheck(user_id="alice")), report=report)


async def test_a_pingone_token_finds_its_session_until_replaced_or_ended(fast_redis, redis):
    registry, store = capped_registry(fast_redis, cap=0)
    try:
        created = await registry.create(pingone_create("h1"), user=ALICE, caller=OWNER)
        assert created.state is not None
        sid = created.state.id
        found = await store.read_by_st_token("h1")
        assert found is not None
        assert found.id == sid
        assert await redis.pttl(keys.session_by_st_token("h1")) > 0  # expires with the session

        with pytest.raises(AlreadyExists) as taken:  # one token, one session
            await registry.create(pingone_create("h1"), user=ALICE, caller=OWNER)
        assert taken.value.error_id == "SESSION-stTaken"
        assert await redis.zcard(keys.sessions_of_user("alice")) == 1  # nothing written

        replaced = replace(pingone_create("h2"), checks=Checks()).report
        await registry.ask(sid, SetSession(report=replaced), user=None, caller=OWNER)
        assert await store.read_by_st_token("h1") is None  # the old token stops working
        assert await redis.exists(keys.session_by_st_token("h1")) == 0
        again = await store.read_by_st_token("h2")
        assert again is not None
        assert again.id == sid

        await registry.ask(sid, DeleteSession(), user=None, caller=OWNER)
        assert await store.read_by_st_token("h2") is None
        assert await redis.exists(keys.session_by_st_token("h2")) == 0
    finally:
        await registry.close()
