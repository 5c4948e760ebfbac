"""RedisSessionStore and its Lua scripts against a real server: leases, fencing, indexes, purge."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest

from actors import machine, tokens
from actors.commands import Checks, CreateSession, DeleteSession, Evidence, SetSession, UserCheck
from actors.errors import AlreadyExists, LeaseLost
from actors.model import SessionState, UserAgent, UserRef
from actors.permissions import Caller, Grant
from storage import index_plan, keys
from storage.cluster import slot_of
from storage.sessions import PURGE_GRACE_MS, RedisSessionStore
from tests.redis_cluster import slot_owner
from tests.support import session_history

CREATOR = Caller(user_id="creator", grants=(Grant(roles=("IAM_LOGIN_CLIENT",)),))
ALICE = UserRef(
    id="alice", org_id="org1", state="USER_STATE_ACTIVE", login_name="alice", display_name="Alice"
)


@pytest.fixture(name="now")
def _now() -> int:
    """Real time, read when the test starts: key expiries are absolute and Redis applies them
    against its own clock, so a time taken at import would be stale in a slow run."""
    return time.time_ns() // 1_000_000


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


def _ctx(now_ms: int, sid: str = "s1") -> machine.Context:
    token = tokens.issue(tokens.SESSION_PREFIX, sid, "tid", b"\x02" * 32)
    return machine.Context(now_ms=now_ms, caller=CREATOR, token=token)


def _decide(state, command, now_ms: int, evidence=None, sid: str = "s1"):
    events = machine.decide(state, command, evidence or Evidence(), _ctx(now_ms, sid))
    return events, machine.evolve_all(state, events, session_id=sid, at_ms=now_ms)


async def _create(store, now_ms: int, sid: str = "s1", **fields):
    command = CreateSession(
        checks=Checks(user=UserCheck(user_id="alice")),
        user_agent=UserAgent(fingerprint_id="fp1"),
        **fields,
    )
    events, state = _decide(None, command, now_ms, Evidence(user=ALICE), sid=sid)
    await store.create(state, events, at_ms=now_ms, creator_id="creator")
    return state


def _every_index(state: SessionState) -> list[str]:
    """Every index the session is in, from the one list commits and the purge use too."""
    found = [*index_plan.of_state(state), keys.sessions_by_purge(state.id)]
    # the list must name all five attributes' indexes, or checking it would prove little
    assert found == [
        keys.SESSIONS_BY_CREATION,
        keys.sessions_of_user("alice"),
        keys.sessions_of_org("org1"),
        keys.sessions_of_creator("creator"),
        keys.sessions_of_fingerprint("fp1"),
        keys.sessions_by_purge(state.id),
    ]
    return found


async def _indexes_holding(redis, sid: str, indexes: list[str]) -> list[str]:
    return [index for index in indexes if await redis.zscore(index, sid) is not None]


async def test_create_writes_state_indexes_and_the_partition_stream(store, redis, now):
    state = await _create(store, now)
    assert await store.read_state("s1") == state
    creation_indexes = _every_index(state)[:-1]  # no lifetime: not scheduled for a purge
    for index in creation_indexes:
        assert await redis.zscore(index, "s1") == now
    assert await redis.zscore(keys.sessions_by_purge("s1"), "s1") is None
    partition = keys.event_stream(keys.event_partition("s1", 4))
    entries = await redis.xrange(partition)
    assert [e[1][b"type"] for e in entries] == [
        b"session.added",
        b"session.user.checked",
        b"session.token.set",
    ]


async def test_streams_never_carry_the_token_or_its_hash(store, redis, now):
    state = await _create(store, now)
    raw = b"".join(
        v for fields in await session_history(redis, "s1", partitions=4) for v in fields.values()
    )
    assert state.token_hash.encode() not in raw
    assert bytes.fromhex(state.token_hash) not in raw
    assert b"s.s1." not in raw


async def test_creating_an_existing_id_is_refused(store, now):
    await _create(store, now)
    with pytest.raises(AlreadyExists):
        await _create(store, now)


async def test_a_held_lease_cannot_be_acquired(store, now):
    await _create(store, now)
    first = await store.acquire("s1", "owner-a", 500)
    assert first is not None
    assert await store.acquire("s1", "owner-b", 500) is None


async def test_commit_after_the_lease_expired_and_moved_is_refused(store, now):
    before = await _create(store, now)
    stale = await store.acquire("s1", "owner-a", 100)
    await asyncio.sleep(0.15)
    fresh = await store.acquire("s1", "owner-b", 500)
    assert stale is not None
    assert fresh is not None
    assert fresh.lease.fence > stale.lease.fence
    events, after = _decide(before, SetSession(metadata={"k": b"v"}), now)
    with pytest.raises(LeaseLost):
        await store.commit(
            stale.lease, before, after, events, at_ms=now, creator_id="x", release=True
        )
    assert await store.read_state("s1") == before


async def test_the_same_owner_with_an_old_fence_is_refused(store, now):
    before = await _create(store, now)
    old = await store.acquire("s1", "owner-a", 100)
    await asyncio.sleep(0.15)
    new = await store.acquire("s1", "owner-a", 500)
    assert old is not None
    assert new is not None
    events, after = _decide(before, SetSession(metadata={"k": b"v"}), now)
    with pytest.raises(LeaseLost):
        await store.commit(
            old.lease, before, after, events, at_ms=now, creator_id="x", release=False
        )
    await store.commit(new.lease, before, after, events, at_ms=now, creator_id="x", release=True)
    assert (await store.read_state("s1")) == after


async def test_a_document_stored_as_json_by_an_earlier_version_reads_and_commits(store, redis, now):
    before = await _create(store, now)
    stored = await redis.hget(keys.session("s1"), "doc")
    assert stored[:1] != b"{"
    assert msgspec.msgpack.decode(stored)["id"] == "s1"
    assert before.token_hash.encode() not in stored  # kept once, in the ``tok`` field
    assert await redis.hget(keys.session("s1"), "tok") == bytes.fromhex(before.token_hash)
    await redis.hset(keys.session("s1"), "doc", msgspec.json.encode(before))  # the old format
    await redis.hset(keys.session("s1"), "tok", before.token_hash)  # and its hex token hash
    assert await store.read_state("s1") == before
    acquired = await store.acquire("s1", "owner-a", 5000)
    assert acquired is not None
    assert acquired.state == before
    events, after = _decide(before, SetSession(metadata={"k": b"v"}), now)
    await store.commit(
        acquired.lease, before, after, events, at_ms=now, creator_id="x", release=True
    )
    assert await store.read_state("s1") == after
    assert (await redis.hget(keys.session("s1"), "doc"))[:1] != b"{"  # rewritten as MessagePack


async def test_commit_with_release_frees_the_lease(store, redis, now):
    before = await _create(store, now)
    acquired = await store.acquire("s1", "owner-a", 5000)
    assert acquired is not None
    events, after = _decide(before, SetSession(metadata={"k": b"v"}), now)
    await store.commit(
        acquired.lease, before, after, events, at_ms=now, creator_id="x", release=True
    )
    assert await redis.exists(keys.session_lease("s1")) == 0


async def test_lifetime_sets_key_expiry_to_expiration_plus_retention(store, redis, now):
    await _create(store, now, lifetime_ms=10_000)
    expected = now + 10_000 + 60_000 + PURGE_GRACE_MS
    assert await redis.pexpiretime(keys.session("s1")) == expected
    assert await redis.zscore(keys.sessions_by_purge("s1"), "s1") == now + 70_000


async def test_termination_leaves_a_tombstone_and_clears_every_index(store, redis, now):
    before = await _create(store, now, lifetime_ms=10_000)  # in the purge schedule too
    every_index = _every_index(before)
    assert await _indexes_holding(redis, "s1", every_index) == every_index
    acquired = await store.acquire("s1", "o", 500)
    assert acquired is not None
    events, after = _decide(before, DeleteSession(), now)
    await store.commit(
        acquired.lease, before, after, events, at_ms=now, creator_id="x", release=True
    )
    meta, _ = await store.read_meta("s1")
    assert meta is not None
    assert meta.terminated
    assert await _indexes_holding(redis, "s1", every_index) == []
    # the tombstone lives for the retention (60 s), counted from the termination
    assert 0 < await redis.pttl(keys.session("s1")) <= 60_000


async def test_purge_removes_sessions_past_retention_and_reschedules_extended_ones(
    store, redis, now
):
    old = await _create(store, now, "old", lifetime_ms=1000)
    live = await _create(store, now, "live", lifetime_ms=10_000_000)
    every_index = _every_index(old)
    assert await _indexes_holding(redis, "old", every_index) == every_index
    assert await store.fetch_metas(["old"]) != [None]
    purged = await store.purge_due(now + 1000 + 60_001)
    assert purged == 1
    for key in (keys.session("old"), keys.session_fence("old")):
        assert await redis.exists(key) == 0, key
    assert await _indexes_holding(redis, "old", every_index) == []
    assert await _indexes_holding(redis, "live", _every_index(live)) == _every_index(live)
    assert await redis.zscore(keys.sessions_of_user("alice"), "live") == now
    # a due entry whose session got a new lifetime meanwhile is rescheduled, not purged
    await redis.zadd(keys.sessions_by_purge("live"), {"live": 0})
    assert await store.purge_due(now + 61_001) == 0
    assert await redis.zscore(keys.sessions_by_purge("live"), "live") == now + 10_000_000 + 60_000
    assert await _indexes_holding(redis, "live", _every_index(live)) == _every_index(live)


async def test_the_sweep_drains_the_earlier_versions_one_purge_schedule(store, redis, now):
    """Earlier versions kept one schedule; its due sessions are purged and it empties, the
    not-due ones moving to their own schedule."""
    old = await _create(store, now, "old", lifetime_ms=1000)
    live = await _create(store, now, "live", lifetime_ms=10_000_000)
    for sid in ("old", "live"):  # as an earlier version scheduled them
        score = await redis.zscore(keys.sessions_by_purge(sid), sid)
        await redis.zrem(keys.sessions_by_purge(sid), sid)
        await redis.zadd(keys.EARLIER_SESSIONS_BY_PURGE, {sid: 0 if sid == "live" else score})
    assert await store.purge_due(now + 1000 + 60_001) == 1
    assert await redis.exists(keys.session("old")) == 0
    assert await _indexes_holding(redis, "old", _every_index(old)) == []
    assert not await redis.exists(keys.EARLIER_SESSIONS_BY_PURGE)
    assert await redis.zscore(keys.sessions_by_purge("live"), "live") == now + 10_000_000 + 60_000
    assert await _indexes_holding(redis, "live", _every_index(live)) == _every_index(live)


def test_the_purge_schedules_spread_over_a_clusters_primaries(redis_cluster):
    """Sixteen schedules on three primaries: none serves more than about half of them."""
    owners = [slot_owner(redis_cluster, slot_of(key)) for key in keys.purge_schedules()[:-1]]
    shares = sorted(owners.count(port) for port in redis_cluster.ports)
    assert shares[0] >= 3, shares
    assert shares[-1] <= 8, shares


async def test_fetch_returns_summaries_in_order_and_none_for_missing(store, now):
    await _create(store, now, "a")
    await _create(store, now, "b")
    found = await store.fetch_metas(["b", "nope", "a"])
    assert [m.session_id if m else None for m in found] == ["b", None, "a"]
    assert found[0] is not None
    decoded = msgspec.json.decode(found[0].wire)
    assert decoded["factors"]["user"]["id"] == "alice"
