"""RedisIntentStore against a real server: compare-and-set steps, expiry, events, races."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from msgspec.structs import replace

from actors import idp_intents as rules
from actors.idp_intents import Intent
from app.process.settings import Settings
from app.services.ids import SecretsMinter
from storage import keys
from storage.intents import RedisIntentStore
from storage.multiplex import MultiplexedRedis
from tests.support import session_history
from tests.test_users_store import StepClock

STARTED = Intent(
    id="intent-1",
    idp_id="idp-1",
    success_url="https://login.example.com/ok",
    failure_url="https://login.example.com/failed",
    redirect_uri="https://sso.example.com/idps/callback",
    nonce="nonce",
    sealed_verifier="kid.sealed",
    creation_ms=1_700_000_000_000,
)


@pytest.fixture(name="store")
async def _store(fast_redis: MultiplexedRedis) -> RedisIntentStore:
    return RedisIntentStore(
        fast_redis,
        Settings(event_partitions=2),
        instance_id="instance",
        clock=StepClock(),
        ids=SecretsMinter(),
    )


async def save(
    store: RedisIntentStore, expected: str, intent: Intent, ttl_ms: int = 60_000
) -> bool:
    return await store.save_intent(
        expected, intent, ttl_ms=ttl_ms, event_type=f"idpintent.{intent.state}", payload={}
    )


async def test_a_started_intent_reads_back_and_expires_with_its_key(
    store: RedisIntentStore, redis: aioredis.Redis
):
    assert await save(store, "", STARTED, ttl_ms=rules.START_TTL_MS)
    assert await store.get_intent("intent-1") == STARTED
    ttl = await redis.pttl(keys.idp_intent("intent-1"))
    assert 0 < ttl <= rules.START_TTL_MS
    assert await store.get_intent("unknown") is None


async def test_an_intent_id_is_started_once(store: RedisIntentStore):
    assert await save(store, "", STARTED)
    assert not await save(store, "", replace(STARTED, nonce="other"))
    stored = await store.get_intent("intent-1")
    assert stored is not None
    assert stored.nonce == "nonce"


async def test_each_step_needs_the_state_it_was_read_in(store: RedisIntentStore):
    await save(store, "", STARTED)
    done = replace(STARTED, state=rules.SUCCEEDED, idp_user_id="ext", expires_ms=1)
    assert not await save(store, rules.SUCCEEDED, done)  # not succeeded yet
    assert await save(store, rules.STARTED, done)
    assert not await save(store, rules.STARTED, replace(done, state=rules.FAILED))
    stored = await store.get_intent("intent-1")
    assert stored is not None
    assert (stored.state, stored.idp_user_id) == (rules.SUCCEEDED, "ext")


async def test_of_many_concurrent_consumers_exactly_one_wins(store: RedisIntentStore):
    await save(store, "", replace(STARTED, state=rules.SUCCEEDED))
    attempts = [
        save(
            store,
            rules.SUCCEEDED,
            replace(STARTED, state=rules.CONSUMED, session_id=f"session-{n}"),
        )
        for n in range(50)
    ]
    wins = await asyncio.gather(*attempts)
    assert wins.count(True) == 1
    stored = await store.get_intent("intent-1")
    assert stored is not None
    assert stored.state == rules.CONSUMED
    assert stored.session_id == f"session-{wins.index(True)}"


async def test_every_step_is_one_event_on_the_intents_partition(
    store: RedisIntentStore, redis: aioredis.Redis
):
    await save(store, "", STARTED)
    await save(store, rules.STARTED, replace(STARTED, state=rules.FAILED))
    assert not await save(store, rules.STARTED, replace(STARTED, state=rules.SUCCEEDED))
    mine = await session_history(redis, "intent-1", partitions=2)
    assert [f[b"type"] for f in mine] == [b"idpintent.started", b"idpintent.failed"]
    assert [f[b"sequence"] for f in mine] == [b"1", b"2"]
    assert all(f[b"aggregateType"] == b"idpintent" for f in mine)
    assert all(b"kid.sealed" not in value for f in mine for value in f.values())
