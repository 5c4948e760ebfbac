"""The relay of session commits, against a real server: crash repair, exactly-once events.

A session's write script touches only the session's own hash slot and records the commit's
effects beside it; ``storage.relay`` applies them (the writer right after its commit, the
repair for a writer that died). A "dead writer" here is a store whose relay pass never
runs, exactly what a SIGKILL between the two steps leaves (``tests/test_relay_crash.py``
does it to a real worker process). The last test runs the session store on a real
3-primary Redis Cluster, which refuses any script whose keys span two slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from actors.actor import ActorConfig
from actors.commands import Checks, CreateSession, DeleteSession, SetSession, UserCheck
from actors.errors import Aborted, AlreadyExists
from actors.execute import Deps
from actors.queries import Page, SessionFilter
from actors.registry import SessionRegistry
from app.services.clock import SystemClock
from app.services.ids import SecretsMinter
from storage import keys, relay
from storage.cluster import ClusterRedis, slot_of
from storage.relay import RelayEntry
from storage.sessions import RedisSessionStore
from tests.redis_cluster import TestRedisCluster
from tests.support import session_history
from tests.test_actor import PasswordsNotUsed
from tests.test_session_cap import ALICE, OWNER, pingone_create

PARTITIONS = 4
LATER = relay.CLAIM_MS + 1


def new_store(client: Any) -> RedisSessionStore:
    return RedisSessionStore(
        client,
        instance_id="inst",
        retention_ms=0,
        partitions=PARTITIONS,
        stream_maxlen=10_000,
        lease_ttl_ms=300,
    )


def new_registry(store: RedisSessionStore) -> SessionRegistry:
    deps = Deps(passwords=PasswordsNotUsed(), clock=SystemClock(), minter=SecretsMinter())
    config = ActorConfig(lease_ttl_ms=300, lease_wait_ms=3000, idle_s=5.0, mailbox_size=64)
    minter = SecretsMinter()
    return SessionRegistry(store, deps, config, ask_timeout_s=10, new_session_id=minter.new_id)


class Writer:
    """A registry whose store's relay pass can be made to die (``dead``) or stall."""

    def __init__(self, client: Any) -> None:
        self.store = new_store(client)
        self.registry = new_registry(self.store)
        self.left: list[RelayEntry] = []
        self._real = self.store._relay_now
        self._real_call = self.store.relay.writer_call

    def dead(self, then: Callable[[RelayEntry], Any] | None = None) -> None:
        async def died(entry: RelayEntry, blob: bytes, recorded: int) -> list[str]:
            self.left.append(entry)
            if then is not None:
                await then(entry)
            return []

        self.store._relay_now = died  # type: ignore[method-assign]
        # and no pass goes out with the commit (on one node it would, in the same write)
        self.store.relay.writer_call = lambda entry, blob: None  # type: ignore[method-assign]

    def alive(self) -> None:
        self.store._relay_now = self._real  # type: ignore[method-assign]
        self.store.relay.writer_call = self._real_call  # type: ignore[method-assign]

    async def create(self, metadata: dict[str, bytes] | None = None) -> str:
        command = CreateSession(checks=Checks(user=UserCheck(user_id="alice")))
        if metadata:
            command = CreateSession(
                checks=Checks(user=UserCheck(user_id="alice")), metadata=metadata
            )
        outcome = await self.registry.create(command, user=ALICE, caller=OWNER)
        assert outcome.state is not None
        return outcome.state.id

    async def set(self, session_id: str, key: str) -> None:
        await self.registry.ask(
            session_id, SetSession(metadata={key: b"v"}), user=None, caller=OWNER
        )


@pytest.fixture(name="writer")
async def _writer(fast_redis) -> AsyncIterator[Writer]:
    writer = Writer(fast_redis)
    yield writer
    await writer.registry.close()


def now_ms() -> int:
    return SystemClock().now_ms()


async def sequences(redis: Any, session_id: str) -> list[int]:
    history = await session_history(redis, session_id, PARTITIONS)
    return [int(fields[b"sequence"]) for fields in history]


async def in_user_index(redis: Any, session_id: str) -> bool:
    return await redis.zscore(keys.sessions_of_user("alice"), session_id) is not None


async def nothing_pending(redis: Any, session_id: str) -> bool:
    pending = keys.relay_pending(slot_of(keys.session(session_id)))
    return not await redis.exists(keys.session_relay(session_id), pending)


async def test_a_create_whose_writer_died_is_relayed_by_the_repair_once(writer, redis):
    writer.dead()
    sid = await writer.create()
    assert await redis.hexists(keys.session(sid), "doc")  # the commit itself stands
    assert not await in_user_index(redis, sid)
    assert await sequences(redis, sid) == []
    assert not await nothing_pending(redis, sid)

    assert await writer.store.repair_relay(now_ms()) == 0  # too young: its writer may live
    assert not await in_user_index(redis, sid)

    assert await writer.store.repair_relay(now_ms() + LATER) == 1
    assert await in_user_index(redis, sid)
    assert await redis.zscore(keys.SESSIONS_BY_CREATION, sid) is not None
    published = await sequences(redis, sid)
    assert published == list(range(1, len(published) + 1))
    assert published
    assert await nothing_pending(redis, sid)

    assert await writer.store.repair_relay(now_ms() + LATER) == 0  # nothing left
    assert await sequences(redis, sid) == published


async def test_a_writer_that_published_then_died_is_not_published_twice(writer, redis):
    async def publish_only(entry: RelayEntry) -> None:  # died before clearing its entry
        blob, passes = relay.encode(entry), writer.store.relay
        slots = {slot_of(k) for k in passes._effect_keys(entry)} if passes.split else {None}
        for slot in slots:  # each slot's effects, as a cluster's pass sends them
            await passes._run(entry, blob, False, slot, effects=True, ack=False)

    writer.dead(then=publish_only)
    sid = await writer.create()
    published = await sequences(redis, sid)
    assert published
    assert not await nothing_pending(redis, sid)
    assert await writer.store.repair_relay(now_ms() + LATER) == 1
    assert await sequences(redis, sid) == published
    assert await nothing_pending(redis, sid)


async def test_a_stalled_writer_resuming_after_the_repair_publishes_nothing_again(writer, redis):
    writer.dead()
    sid = await writer.create()
    assert await writer.store.repair_relay(now_ms() + LATER) == 1
    published = await sequences(redis, sid)
    await writer.store.relay.apply(writer.left[0])  # the stalled writer's own pass, late
    assert await sequences(redis, sid) == published
    assert await nothing_pending(redis, sid)


async def test_the_next_writer_finishes_a_dead_writers_commit_before_its_own(writer, redis):
    sid = await writer.create()
    writer.dead()
    await writer.set(sid, "by-the-dead-writer")
    dead_ones = await sequences(redis, sid)
    writer.alive()
    await writer.set(sid, "by-the-next")  # waits out the dead writer's lease first
    published = await sequences(redis, sid)
    assert len(published) > len(dead_ones)
    assert published == list(range(1, len(published) + 1))  # every event once, in order
    state = await writer.store.read_state(sid)
    assert state is not None
    assert {"by-the-dead-writer", "by-the-next"} <= set(state.metadata)
    assert await nothing_pending(redis, sid)


async def test_many_dead_writers_are_repaired_in_one_pass(writer, redis):
    writer.dead()
    sids = await asyncio.gather(*(writer.create() for _ in range(30)))
    assert await writer.store.repair_relay(now_ms() + LATER) == 30
    for sid in sids:
        assert await in_user_index(redis, sid)
        assert await nothing_pending(redis, sid)
        published = await sequences(redis, sid)
        assert published == list(range(1, len(published) + 1))


async def test_a_purge_whose_writer_died_leaves_indexes_the_repair_cleans(writer, redis):
    command = CreateSession(checks=Checks(user=UserCheck(user_id="alice")), lifetime_ms=1)
    outcome = await writer.registry.create(command, user=ALICE, caller=OWNER)
    assert outcome.state is not None
    sid = outcome.state.id
    writer.dead()
    assert await writer.store.purge_due(now_ms() + 86_400_000) == 1
    assert not await redis.exists(keys.session(sid))
    assert await redis.zscore(keys.SESSIONS_BY_CREATION, sid) is not None
    assert await writer.store.repair_relay(now_ms() + 86_400_000 + LATER) == 1
    assert await redis.zscore(keys.SESSIONS_BY_CREATION, sid) is None
    assert await redis.zscore(keys.sessions_by_purge(sid), sid) is None
    assert not await in_user_index(redis, sid)
    assert await nothing_pending(redis, sid)


async def test_racing_creates_for_one_pingone_token_leave_exactly_one_owner(writer):
    outcomes = await asyncio.gather(
        *(
            writer.registry.create(pingone_create("shared"), user=ALICE, caller=OWNER)
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    won = [o.state.id for o in outcomes if not isinstance(o, BaseException) and o.state]
    refused = [o for o in outcomes if isinstance(o, AlreadyExists)]
    assert len(won) == 1, outcomes
    assert len(refused) == 19, outcomes
    assert all(error.error_id == "SESSION-stTaken" for error in refused)
    found = await writer.store.read_by_st_token("shared")
    assert found is not None
    assert found.id == won[0]


async def test_a_pending_token_claim_is_refused_until_it_expires(writer, redis):
    """A writer that claimed a token and died before its write blocks it only while the
    claim is pending (a live writer in flight looks the same, so it is never taken over)."""
    key = keys.session_by_st_token("inflight")
    await redis.set(key, "~a-writer-in-flight", px=30_000)
    with pytest.raises(AlreadyExists) as refused:
        await writer.registry.create(pingone_create("inflight"), user=ALICE, caller=OWNER)
    assert refused.value.error_id == "SESSION-stTaken"
    assert await redis.get(key) == b"~a-writer-in-flight"
    await redis.pexpire(key, 1)  # the pending claim runs out
    await asyncio.sleep(0.01)
    created = await writer.registry.create(pingone_create("inflight"), user=ALICE, caller=OWNER)
    assert created.state is not None
    assert await redis.get(key) == created.state.id.encode()  # confirmed by the relay
    found = await writer.store.read_by_st_token("inflight")
    assert found is not None
    assert found.id == created.state.id


async def test_a_write_later_than_its_token_claims_deadline_is_refused_and_frees_it(
    writer, redis, monkeypatch
):
    monkeypatch.setattr("storage.sessions.WRITE_DEADLINE_MS", -1)  # already too late
    with pytest.raises(Aborted) as late:
        await writer.registry.create(pingone_create("late"), user=ALICE, caller=OWNER)
    assert late.value.error_id == "SESSION-claimExpired"
    assert await redis.get(keys.session_by_st_token("late")) is None  # the claim freed
    assert [k async for k in redis.scan_iter(match="sess:*")] == []  # nothing written
    monkeypatch.undo()
    created = await writer.registry.create(pingone_create("late"), user=ALICE, caller=OWNER)
    assert created.state is not None


async def test_a_token_claim_whose_owner_never_committed_is_taken_over(writer, redis):
    await redis.set(keys.session_by_st_token("orphan"), "a-writer-that-died")
    created = await writer.registry.create(pingone_create("orphan"), user=ALICE, caller=OWNER)
    assert created.state is not None
    assert await redis.get(keys.session_by_st_token("orphan")) == created.state.id.encode()
    found = await writer.store.read_by_st_token("orphan")
    assert found is not None
    assert found.id == created.state.id


async def test_an_ended_sessions_token_can_be_claimed_again(writer):
    first = await writer.registry.create(pingone_create("reused"), user=ALICE, caller=OWNER)
    assert first.state is not None
    writer.dead()  # its token key is not freed: the claim must see the owner ended
    await writer.registry.ask(first.state.id, DeleteSession(), user=None, caller=OWNER)
    writer.alive()
    second = await writer.registry.create(pingone_create("reused"), user=ALICE, caller=OWNER)
    assert second.state is not None
    found = await writer.store.read_by_st_token("reused")
    assert found is not None
    assert found.id == second.state.id


# ---------------------------------------------------------------------------------------------
# on a real Redis Cluster: every script of a session's life on one slot
# ---------------------------------------------------------------------------------------------


@pytest.fixture(name="cluster_writer")
async def _cluster_writer(redis_cluster: TestRedisCluster) -> AsyncIterator[Writer]:
    redis_cluster.flush()
    client = ClusterRedis(redis_cluster.url)
    writer = Writer(client)
    yield writer
    await writer.registry.close()
    await client.close()


async def test_a_sessions_life_on_a_cluster_touches_one_slot_per_script(cluster_writer):
    client = cluster_writer.store.relay._redis
    sids = [await cluster_writer.create({"n": str(n).encode()}) for n in range(12)]
    for sid in sids[:6]:
        await cluster_writer.set(sid, "changed")
    for sid in sids[6:]:
        await cluster_writer.registry.ask(sid, DeleteSession(), user=None, caller=OWNER)
    user_index = await client.execute("ZRANGE", keys.sessions_of_user("alice"), 0, -1)
    assert {member.decode() for member in user_index} == set(sids[:6])
    for sid in sids:
        stream = keys.event_stream(keys.event_partition(sid, PARTITIONS))
        entries = await client.execute("XRANGE", stream, "-", "+")
        mine = [e for e in entries if sid.encode() in e[1]]
        published = [int(fields[fields.index(b"sequence") + 1]) for _, fields in mine]
        assert published == list(range(1, len(published) + 1)), published
        assert not await client.execute("EXISTS", keys.session_relay(sid))

    cluster_writer.dead()  # a writer dies after its commit; the per-node repair finds it
    orphan = await cluster_writer.create()
    assert await client.execute("ZSCORE", keys.sessions_of_user("alice"), orphan) is None
    assert await cluster_writer.store.repair_relay(now_ms() + LATER) == 1
    assert await client.execute("ZSCORE", keys.sessions_of_user("alice"), orphan) is not None
    command = CreateSession(checks=Checks(user=UserCheck(user_id="alice")), lifetime_ms=1)
    cluster_writer.alive()
    short = await cluster_writer.registry.create(command, user=ALICE, caller=OWNER)
    assert short.state is not None
    assert await cluster_writer.store.purge_due(now_ms() + 86_400_000) == 1
    assert not await client.execute("EXISTS", keys.session(short.state.id))
    assert await client.execute("ZSCORE", keys.sessions_of_user("alice"), short.state.id) is None


async def test_reads_over_many_sessions_on_a_cluster_gather_one_slot_at_a_time(cluster_writer):
    store = cluster_writer.store
    sids = [await cluster_writer.create() for _ in range(9)]
    await cluster_writer.registry.ask(sids[0], DeleteSession(), user=None, caller=OWNER)
    slots = {slot_of(keys.session(sid)) for sid in sids}
    assert len(slots) == len(sids)  # a single script over them would be refused
    metas = await store.fetch_metas([*sids, "gone"])
    assert [meta is not None for meta in metas] == [False] + [True] * 8 + [False]
    states = await store.read_states(sids)
    assert [state.id if state else None for state in states] == [None, *sids[1:]]
    page = Page(offset=0, limit=100, descending=False)
    total, found = await store.search(SessionFilter(user_id="alice"), OWNER, page, now_ms())
    assert total == 8
    assert {meta.session_id for meta in found} == set(sids[1:])

    created = await cluster_writer.registry.create(
        pingone_create("tok-hash"), user=ALICE, caller=OWNER
    )
    assert created.state is not None
    by_token = await store.read_by_st_token("tok-hash")
    assert by_token is not None
    assert by_token.id == created.state.id
    assert await store.read_by_st_token("another") is None


async def test_on_a_cluster_a_stalled_writer_after_the_repair_publishes_nothing_again(
    cluster_writer,
):
    # on a cluster the writer's pass goes slot by slot, so the event step cannot see that
    # the entry was cleared: the repair's mark in the partition's slot is what stops it
    client = cluster_writer.store.relay._redis
    cluster_writer.dead()
    sid = await cluster_writer.create()
    assert await cluster_writer.store.repair_relay(now_ms() + LATER) == 1
    stream = keys.event_stream(keys.event_partition(sid, PARTITIONS))

    async def published() -> list[bytes]:
        entries = await client.execute("XRANGE", stream, "-", "+")
        return [fields[fields.index(b"sequence") + 1] for _, fields in entries]

    before = await published()
    assert before
    await cluster_writer.store.relay.apply(cluster_writer.left[0])  # the stalled writer, late
    assert await published() == before


async def test_on_a_cluster_a_create_cancelled_after_its_script_still_makes_its_pass(
    cluster_writer,
):
    """A caller that goes away (its client hung up) does not leave its pass to the repair."""
    client = cluster_writer.store.relay._redis
    real = cluster_writer.store.relay.settle
    entered, release, settled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[str] = []

    async def slow_settle(entry: RelayEntry, blob: bytes, recorded: int) -> list[str] | None:
        seen.append(entry.session_id)
        entered.set()
        await release.wait()
        try:
            victims: list[str] | None = await real(entry, blob, recorded)
            return victims
        finally:
            settled.set()

    cluster_writer.store.relay.settle = slow_settle
    creating = asyncio.create_task(cluster_writer.create())
    await entered.wait()  # the create script ran; its pass is next
    creating.cancel()
    with pytest.raises(asyncio.CancelledError):
        await creating
    release.set()
    await asyncio.wait_for(settled.wait(), 5)
    sid = seen[0]
    assert await client.execute("ZSCORE", keys.sessions_of_user("alice"), sid) is not None
    assert not await client.execute("EXISTS", keys.session_relay(sid))  # nothing left
    assert await cluster_writer.store.repair_relay(now_ms() + LATER) == 0
