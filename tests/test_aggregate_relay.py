"""Users', orgs' and intents' events go through the relay, like a session's.

Their write scripts record the events beside the aggregate (``user:{U}:relay``, its own hash
slot) and the relay appends them to the partition stream right after; a writer that dies in
between leaves the entry to the repair (or to the aggregate's next write, which applies it
first), and the events appear once, in sequence order.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from msgspec.structs import replace

from actors import idp_intents as intent_rules
from actors import tokens
from actors import users as user_rules
from actors.errors import AlreadyExists
from actors.idp_configs import IdpConfig
from actors.user_links import add_link
from actors.user_records import IdpLink
from app.process.settings import Settings
from app.services.ids import SecretsMinter
from storage import keys, relay
from storage.cluster import ClusterRedis
from storage.idps import RedisIdpStore
from storage.intents import RedisIntentStore
from storage.relay import RelayEntry
from storage.user_base import UserStoreBase
from storage.users import RedisUserStore
from tests.redis_cluster import TestRedisCluster
from tests.test_intents_store import STARTED
from tests.test_users_store import StepClock, add_alice

PARTITIONS = 2
LATER = relay.CLAIM_MS + 1


def real_ms() -> int:
    return time.time_ns() // 1_000_000


def die_before_relaying(store: UserStoreBase) -> list[RelayEntry]:
    """The store's writer passes do nothing from now on, as if each writer died right there."""
    left: list[RelayEntry] = []

    async def died(entry: RelayEntry, blob: bytes, recorded: int) -> list[str] | None:
        left.append(entry)
        return None

    store._relay.settle = died  # type: ignore[method-assign]
    # and no pass goes out with the write (on one node it would, in the same write)
    store._relay.chained_call = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return left


async def history(client: Any, aggregate_id: str) -> list[tuple[str, int]]:
    stream = keys.event_stream(keys.event_partition(aggregate_id, PARTITIONS))
    found = []
    for _, raw in await client.execute("XRANGE", stream, "-", "+"):
        fields = dict(zip(raw[::2], raw[1::2], strict=True))
        if fields[b"aggregateId"] == aggregate_id.encode():
            found.append((fields[b"type"].decode(), int(fields[b"sequence"])))
    return found


@pytest.fixture(name="users")
async def _users(fast_redis) -> RedisUserStore:
    store = RedisUserStore(
        fast_redis,
        Settings(domain="example.test", event_partitions=PARTITIONS),
        clock=StepClock(),
        ids=SecretsMinter(),
    )
    await store.bootstrap()
    return store


async def test_a_users_events_whose_writer_died_are_relayed_by_the_repair_once(users, fast_redis):
    left = die_before_relaying(users)
    alice = await add_alice(users)
    assert [entry.session_id for entry in left] == ["u1"]
    assert await history(fast_redis, "u1") == []  # committed, not yet relayed
    assert await fast_redis.execute("HLEN", keys.aggregate_relay(keys.user("u1"))) == 1

    now = real_ms() + LATER  # the entry's time is the server's
    assert await users._relay.repair(now) >= 1
    expected = [("user.human.added", 1), ("user.human.email.verified", 2)]
    assert await history(fast_redis, "u1") == expected
    assert alice.sequence == 2
    assert await users._relay.repair(now) == 0  # nothing left: applied once
    assert await history(fast_redis, "u1") == expected
    assert not await fast_redis.execute("EXISTS", keys.aggregate_relay(keys.user("u1")))


async def test_a_users_next_write_relays_a_dead_writers_events_first(users, fast_redis):
    real, real_chain = users._relay.settle, users._relay.chained_call
    die_before_relaying(users)
    await add_alice(users)
    users._relay.settle = real  # the next writer is alive: its pass finds two entries
    users._relay.chained_call = real_chain
    start = await users.begin_password_check("u1", "attempt-1", 10**15, 0)
    assert start.status == "OK"
    await users.finish_password_check("u1", "attempt-1", False, 0, StepClock().now_ms())
    assert await history(fast_redis, "u1") == [
        ("user.human.added", 1),
        ("user.human.email.verified", 2),
        ("user.human.password.check.failed", 3),
    ]
    assert not await fast_redis.execute("EXISTS", keys.aggregate_relay(keys.user("u1")))


# -- on a real cluster: an intent's steps touch only the intent's slot ----------------------
@pytest.fixture(name="cluster_intents")
async def _cluster_intents(
    redis_cluster: TestRedisCluster,
) -> AsyncIterator[tuple[RedisIntentStore, Any]]:
    redis_cluster.flush()
    client: Any = ClusterRedis(redis_cluster.url)  # the stores take either client
    store = RedisIntentStore(
        client,
        Settings(event_partitions=PARTITIONS),
        instance_id="instance",
        clock=StepClock(),
        ids=SecretsMinter(),
    )
    yield store, client
    await client.close()


async def test_an_intents_steps_and_events_on_a_cluster(cluster_intents):
    store, client = cluster_intents
    assert await store.save_intent(
        "", STARTED, ttl_ms=60_000, event_type="idpintent.started", payload={}
    )
    done = replace(STARTED, state=intent_rules.SUCCEEDED, idp_user_id="ext", expires_ms=1)
    left = die_before_relaying(store)  # the writer of the second step dies before relaying
    assert await store.save_intent(
        intent_rules.STARTED, done, ttl_ms=60_000, event_type="idpintent.succeeded", payload={}
    )
    assert len(left) == 1
    assert await history(client, STARTED.id) == [("idpintent.started", 1)]
    assert await store._relay.repair(real_ms() + LATER) == 1  # the per-node look
    assert await history(client, STARTED.id) == [
        ("idpintent.started", 1),
        ("idpintent.succeeded", 2),
    ]


# -- on a real cluster: a user's life, every script on the user's own slot ------------------
async def test_a_users_life_on_a_cluster(redis_cluster: TestRedisCluster):
    redis_cluster.flush()
    client: Any = ClusterRedis(redis_cluster.url)
    try:
        users = RedisUserStore(
            client,
            Settings(domain="example.test", event_partitions=PARTITIONS),
            clock=StepClock(),
            ids=SecretsMinter(),
        )
        await users.bootstrap()
        alice = await add_alice(users)
        assert await users.user_id_by_login_name("ALICE") == alice.id
        assert await users.user_id_by_login_name("alice@zitadel.example.test") == alice.id
        with pytest.raises(AlreadyExists):
            await add_alice(users, user_id="u2")

        link = IdpLink(idp_id="idp1", user_id="ext-1", user_name="ada")
        await users.mutate(alice.id, lambda user, now: add_link(user, link, now))
        assert await users.idp_link_owner("idp1", "ext-1") == alice.id
        assert await users.idp_link_owners("idp1") == {alice.id}
        start = await users.begin_password_check(alice.id, "attempt-1", 10**15, 0)
        assert start.status == "OK"
        await users.finish_password_check(alice.id, "attempt-1", True, 0, StepClock().now_ms())

        await users.delete_user(alice.id)
        assert await users.user_id_by_login_name("alice") is None
        assert await users.idp_link_owner("idp1", "ext-1") is None
        assert not await client.execute("EXISTS", keys.login_name("alice"))
        types = [event for event, _ in await history(client, alice.id)]
        assert types[0] == "user.human.added"
        assert "user.human.password.check.succeeded" in types
        sequences = [seq for _, seq in await history(client, alice.id)]
        assert sequences == list(range(1, len(sequences) + 1))
        bob = await add_alice(users, user_id="u2")  # the name is free again
        assert await users.user_id_by_login_name("alice") == bob.id
    finally:
        await client.close()


async def test_a_pat_exists_exactly_when_its_event_does(users, fast_redis):
    robot = await users.create_user(
        user_rules.new_machine(
            user_id="robot", org_id=await users.default_org_id(), username="robot",
            name="robot", description="", now_ms=StepClock().now_ms(), grants=(),
        )
    )  # fmt: skip
    issued = tokens.issue(tokens.PAT_PREFIX, "pat-1", "pat-1", b"\x01" * 32)
    left = die_before_relaying(users)
    await users.add_pat(robot.id, issued, None)
    assert len(left) == 1
    assert await users.get_pat("pat-1") is None  # not before its event is published
    assert "user.personal.access.token.added" not in [
        t for t, _ in await history(fast_redis, "robot")
    ]
    assert await users._relay.repair(real_ms() + LATER) == 1
    record = await users.get_pat("pat-1")
    assert record is not None
    assert (record.user_id, record.secret_hash) == ("robot", issued.token_hash)
    added = [t for t, _ in await history(fast_redis, "robot")]
    assert added.count("user.personal.access.token.added") == 1
    assert await fast_redis.execute("PTTL", keys.pat("pat-1")) == -1


async def test_pats_and_identity_providers_on_a_cluster(redis_cluster: TestRedisCluster):
    redis_cluster.flush()
    client: Any = ClusterRedis(redis_cluster.url)
    settings = Settings(domain="example.test", event_partitions=PARTITIONS)
    try:
        users = RedisUserStore(client, settings, clock=StepClock(), ids=SecretsMinter())
        await users.bootstrap()
        assert await users.ensure_admin("p.admintoken.s3cr3t") is False
        record = await users.get_pat("admintoken")
        assert record is not None
        assert await users.user_id_by_login_name("admin") == record.user_id
        kinds = {t for t, _ in await history(client, record.user_id)}
        assert "user.personal.access.token.added" in kinds

        idps = RedisIdpStore(client, settings, clock=StepClock(), ids=SecretsMinter())
        config = IdpConfig(id="idp1", kind="oidc", name="Corp", client_id="c", sealed_secret="s")
        await idps.add(config, creator_id="")
        assert [c.id for c in await idps.search("")] == ["idp1"]
        stored = await idps.get("idp1")
        assert stored is not None
        await idps.remove(stored, creator_id="")
        assert await idps.search("") == []
        assert [t for t, _ in await history(client, "idp1")] == [
            "instance.idp.oidc.added",
            "instance.idp.removed",
        ]
    finally:
        await client.close()
