"""Session actors and the registry against a real server: serialisation, leases, back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from actors.actor import ActorConfig
from actors.commands import CreateSession, SetSession
from actors.errors import LeaseLost, MailboxFull
from actors.execute import Deps
from actors.permissions import SYSTEM, Caller
from actors.registry import SessionRegistry
from app.services.clock import SystemClock
from app.services.ids import SecretsMinter
from storage import keys
from storage.sessions import RedisSessionStore


class PasswordsNotUsed:
    """These tests send no password checks; a call would be a bug in the test."""

    async def verify_password(self, user_id: str, password: str, *, caller: Caller) -> None:
        raise AssertionError("no password check expected")


def make_registry(
    fast_redis,
    *,
    idle_s: float = 5.0,
    mailbox: int = 256,
    lease_wait_ms: int = 2000,
    lease_ttl_ms: int = 2000,
    max_sessions_per_user: int = 0,
    on_lease_wait: Callable[[], None] | None = None,
) -> SessionRegistry:
    store = RedisSessionStore(
        fast_redis,
        instance_id="inst",
        retention_ms=60_000,
        partitions=4,
        stream_maxlen=10_000,
        lease_ttl_ms=lease_ttl_ms,
        max_sessions_per_user=max_sessions_per_user,
    )
    deps = Deps(passwords=PasswordsNotUsed(), clock=SystemClock(), minter=SecretsMinter())
    config = ActorConfig(
        lease_ttl_ms=lease_ttl_ms,
        lease_wait_ms=lease_wait_ms,
        idle_s=idle_s,
        mailbox_size=mailbox,
        on_lease_wait=on_lease_wait,
    )
    return SessionRegistry(
        store, deps, config, ask_timeout_s=10, new_session_id=SecretsMinter().new_id
    )


@pytest.fixture(name="registry")
async def _registry(fast_redis):
    registry = make_registry(fast_redis)
    yield registry
    await registry.close()


async def _new_session(registry: SessionRegistry) -> str:
    outcome = await registry.create(CreateSession(), user=None, caller=SYSTEM)
    assert outcome.state is not None
    return outcome.state.id


async def test_concurrent_sets_are_serialised_and_none_is_lost(registry):
    sid = await _new_session(registry)
    outcomes = await asyncio.gather(
        *[
            registry.ask(sid, SetSession(metadata={f"k{i}": b"v"}), user=None, caller=SYSTEM)
            for i in range(50)
        ]
    )
    sequences = sorted(o.state.sequence for o in outcomes)
    assert sequences == list(range(4, 2 + 2 * 50 + 1, 2))  # metadata.set + token.set each
    last = max(outcomes, key=lambda o: o.state.sequence).state
    assert set(last.metadata) == {f"k{i}" for i in range(50)}
    assert len({o.token for o in outcomes}) == 50


async def test_an_idle_actor_stops_and_leaves_no_lease(redis, fast_redis):
    registry = make_registry(fast_redis, idle_s=0.05)
    sid = await _new_session(registry)
    await registry.ask(sid, SetSession(metadata={"k": b"v"}), user=None, caller=SYSTEM)
    assert registry.live_actors == 1
    await asyncio.sleep(0.2)
    assert registry.live_actors == 0
    assert await redis.exists(keys.session_lease(sid)) == 0
    await registry.close()


async def test_a_full_mailbox_refuses_at_once(redis, fast_redis):
    registry = make_registry(fast_redis, mailbox=2)
    sid = await _new_session(registry)
    await redis.set(keys.session_lease(sid), "someone-else", px=300)  # park the actor
    asks = [
        asyncio.ensure_future(
            registry.ask(sid, SetSession(metadata={f"k{i}": b"v"}), user=None, caller=SYSTEM)
        )
        for i in range(4)
    ]
    results = await asyncio.gather(*asks, return_exceptions=True)
    # all four are told before the actor first runs: two fill the mailbox, two are refused
    assert [type(r).__name__ for r in results] == [
        "Outcome",
        "Outcome",
        "MailboxFull",
        "MailboxFull",
    ]
    assert all(isinstance(r, MailboxFull) for r in results[2:])
    final = await registry.ask(sid, SetSession(), user=None, caller=SYSTEM)
    assert final.state is not None
    assert set(final.state.metadata) == {"k0", "k1"}  # the refused ones left no trace
    await registry.close()


async def test_a_lease_left_by_a_dead_worker_is_waited_out(redis, fast_redis):
    registry = make_registry(fast_redis, lease_wait_ms=3000)
    sid = await _new_session(registry)
    await redis.set(keys.session_lease(sid), "dead-worker", px=300)
    outcome = await registry.ask(sid, SetSession(metadata={"k": b"v"}), user=None, caller=SYSTEM)
    assert outcome.state is not None
    assert outcome.state.metadata == {"k": b"v"}
    await registry.close()


async def test_a_lease_held_longer_than_the_wait_gives_409(redis, fast_redis):
    registry = make_registry(fast_redis, lease_wait_ms=100)
    sid = await _new_session(registry)
    await redis.set(keys.session_lease(sid), "busy-worker", px=5000)
    with pytest.raises(LeaseLost) as err:
        await registry.ask(sid, SetSession(metadata={"k": b"v"}), user=None, caller=SYSTEM)
    assert err.value.http_status == 409
    await registry.close()


async def test_two_registries_on_one_session_lose_nothing(redis, fast_redis):
    """Two registries stand for two worker processes sharing one Redis."""
    first, second = make_registry(fast_redis), make_registry(fast_redis)
    sid = await _new_session(first)
    asks = [
        (first if i % 2 else second).ask(
            sid, SetSession(metadata={f"k{i}": b"v"}), user=None, caller=SYSTEM
        )
        for i in range(40)
    ]
    outcomes = await asyncio.gather(*asks)
    final = await first.ask(sid, SetSession(), user=None, caller=SYSTEM)
    assert final.state is not None
    assert set(final.state.metadata) == {f"k{i}" for i in range(40)}
    sequences = [o.state.sequence for o in outcomes if o.state is not None]
    assert final.state.sequence == max(sequences) == 2 + 2 * 40
    await first.close()
    await second.close()
