"""Login names are unique with one key per name, claimed before the user's write.

Racing creates of one username leave one user; a writer that dies after its claim blocks
the name only until the claim expires; one that dies after its write has the claim
confirmed by the relay's repair; a deleted user's name whose release never ran is taken over
by the next user after its state was read; a write that comes too late for its claims is
refused and frees them; and earlier versions' one hash of names moves to the keys at start.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from actors.errors import Aborted, AlreadyExists
from actors.user_links import add_link
from actors.user_records import IdpLink
from app.process.settings import Settings
from app.services.ids import SecretsMinter
from storage import keys, name_claims, relay
from storage.users import RedisUserStore
from tests.test_aggregate_relay import die_before_relaying
from tests.test_users_store import StepClock, add_alice


def new_store(fast_redis) -> RedisUserStore:
    return RedisUserStore(
        fast_redis,
        Settings(domain="example.test", event_partitions=2),
        clock=StepClock(),
        ids=SecretsMinter(),
    )


@pytest.fixture(name="store")
async def _store(fast_redis) -> RedisUserStore:
    store = new_store(fast_redis)
    await store.bootstrap()
    return store


async def test_racing_creates_of_one_username_leave_exactly_one_user(fast_redis, store):
    stores = [new_store(fast_redis) for _ in range(4)]  # as if four workers
    for other in stores:
        await other.bootstrap()

    async def create(n: int) -> str:
        try:
            await add_alice(stores[n % 4], user_id=f"u{n}", username="Alice" if n % 2 else "ALICE")
        except AlreadyExists:
            return "taken"
        return f"u{n}"

    outcomes = await asyncio.gather(*(create(n) for n in range(24)))
    winners = [outcome for outcome in outcomes if outcome != "taken"]
    assert len(winners) == 1
    assert await store.user_id_by_login_name("alice") == winners[0]
    assert await store.user_id_by_login_name("alice@zitadel.example.test") == winners[0]
    for name in ("alice", "alice@zitadel.example.test"):  # confirmed: no expiry left
        assert await fast_redis.execute("PTTL", keys.login_name(name)) == -1
    assert sum([await store.get_user(f"u{n}") is not None for n in range(24)]) == 1


async def test_a_claim_whose_write_never_happened_expires_and_resolves_to_nobody(
    fast_redis, store, monkeypatch
):
    monkeypatch.setattr(name_claims, "CLAIM_TTL_MS", 400)
    claims = store._login_claims
    claimed = await claims.claim_all(["alice"], "ghost", store._holds_login_name)
    assert claimed is not None
    assert claimed.names == ["alice"]  # the writer dies here
    assert await store.user_id_by_login_name("alice") is None  # no user has the name
    with pytest.raises(AlreadyExists):  # pending: the name is busy until it expires
        await add_alice(store)
    await asyncio.sleep(0.5)
    created = await add_alice(store)
    assert await store.user_id_by_login_name("Alice") == created.id


async def test_a_writer_that_died_after_its_write_has_its_names_confirmed_by_the_repair(
    fast_redis, store
):
    die_before_relaying(store)
    alice = await add_alice(store)
    assert await fast_redis.execute("PTTL", keys.login_name("alice")) > 0  # still pending
    assert await store.user_id_by_login_name("alice") == alice.id  # her state names it
    with pytest.raises(AlreadyExists):
        await add_alice(store, user_id="u2")
    later = time.time_ns() // 1_000_000 + relay.CLAIM_MS + 1
    assert await store._relay.repair(later) == 1
    assert await fast_redis.execute("PTTL", keys.login_name("alice")) == -1


async def test_a_deleted_users_name_left_behind_is_taken_over_after_reading_its_state(
    fast_redis, store
):
    await add_alice(store)
    die_before_relaying(store)  # the deletion is stored, its release of the names never ran
    await store.delete_user("u1")
    assert await fast_redis.execute("GET", keys.login_name("alice")) == b"u1"
    assert await store.user_id_by_login_name("alice") is None  # u1 is gone: not resolved

    fresh = new_store(fast_redis)
    await fresh.bootstrap()
    bob = await add_alice(fresh, user_id="u2")
    assert await fresh.user_id_by_login_name("alice") == bob.id
    assert await fast_redis.execute("GET", keys.login_name("alice")) == b"u2"


async def test_a_write_too_late_for_its_claims_is_refused_and_frees_them(
    fast_redis, store, monkeypatch
):
    monkeypatch.setattr(name_claims, "WRITE_DEADLINE_MS", -1)  # every write comes too late
    with pytest.raises(Aborted):
        await add_alice(store)
    assert await store.get_user("u1") is None
    assert not await fast_redis.execute("EXISTS", keys.login_name("alice"))
    monkeypatch.setattr(name_claims, "WRITE_DEADLINE_MS", 20_000)
    assert (await add_alice(store)).id == "u1"  # a retry goes through


async def test_a_failed_create_frees_only_the_claims_it_made(fast_redis, store):
    alice = await add_alice(store)
    with pytest.raises(AlreadyExists):  # the same id again, another username
        await add_alice(store, username="someone-else")
    assert not await fast_redis.execute("EXISTS", keys.login_name("someone-else"))
    with pytest.raises(AlreadyExists):  # the same id and username: her names are kept
        await add_alice(store)
    assert await store.user_id_by_login_name("alice") == alice.id


@pytest.mark.node_only("earlier versions ran on one node only: a cluster never holds their keys")
async def test_earlier_versions_login_name_hash_moves_to_one_key_per_name(fast_redis, store):
    alice = await add_alice(store)
    await fast_redis.execute("DEL", keys.login_name("alice"))
    await fast_redis.execute("HSET", keys.LOGIN_NAMES, "alice", alice.id)
    restarted = new_store(fast_redis)
    await restarted.bootstrap()
    assert await restarted.user_id_by_login_name("alice") == alice.id
    assert not await fast_redis.execute("EXISTS", keys.LOGIN_NAMES)


# -- organization names and domains: the same claims ----------------------------------------
async def test_racing_org_creates_of_one_name_leave_one_org(fast_redis, store):
    stores = [new_store(fast_redis) for _ in range(4)]

    async def create(n: int) -> str:
        try:
            return (await stores[n % 4].create_org("Acme" if n % 2 else "ACME")).id
        except AlreadyExists:
            return "taken"

    outcomes = await asyncio.gather(*(create(n) for n in range(16)))
    winners = [outcome for outcome in outcomes if outcome != "taken"]
    assert len(winners) == 1
    found = await store.org_by_name("acme")
    assert found is not None
    assert found.id == winners[0]
    assert (await store.org_by_domain(found.domain.upper())) == found


async def test_workers_starting_together_agree_on_one_default_org(fast_redis, redis):
    stores = [new_store(fast_redis) for _ in range(6)]
    infos = await asyncio.gather(*(s.bootstrap() for s in stores))
    assert len({info.default_org_id for info in infos}) == 1
    assert len(await redis.keys("orgname:*")) == 1


@pytest.mark.node_only("earlier versions ran on one node only: a cluster never holds their keys")
async def test_earlier_versions_org_name_hashes_move_to_one_key_each(fast_redis, store):
    acme = await store.create_org("Acme")
    for key in (keys.org_name("acme"), keys.org_domain(acme.domain.lower())):
        await fast_redis.execute("DEL", key)
    await fast_redis.execute("HSET", keys.ORG_NAMES, "acme", acme.id)
    await fast_redis.execute("HSET", keys.ORG_DOMAINS, acme.domain.lower(), acme.id)
    restarted = new_store(fast_redis)
    await restarted.bootstrap()
    assert await restarted.org_by_name("Acme") == acme
    assert await restarted.org_by_domain(acme.domain) == acme
    assert not await fast_redis.execute("EXISTS", keys.ORG_NAMES, keys.ORG_DOMAINS)


@pytest.mark.node_only("earlier versions ran on one node only: a cluster never holds their keys")
async def test_earlier_versions_idp_link_hash_moves_to_claims_and_the_providers_index(
    fast_redis, store
):
    alice = await add_alice(store)
    link = IdpLink(idp_id="idp1", user_id="ext-1")
    await store.mutate(alice.id, lambda user, now: add_link(user, link, now))
    await fast_redis.execute("DEL", keys.idp_link("idp1:ext-1"), keys.idp_links_of("idp1"))
    await fast_redis.execute("HSET", keys.IDP_LINKS, "idp1:ext-1", alice.id)
    restarted = new_store(fast_redis)
    await restarted.bootstrap()
    assert await restarted.idp_link_owner("idp1", "ext-1") == alice.id
    assert await restarted.idp_link_owners("idp1") == {alice.id}
    assert not await fast_redis.execute("EXISTS", keys.IDP_LINKS)


async def test_workers_ensuring_the_admin_together_make_one_admin_user(fast_redis):
    stores = [new_store(fast_redis) for _ in range(4)]
    for store in stores:
        await store.bootstrap()
    await asyncio.gather(*(store.ensure_admin("p.admintoken.s3cr3t") for store in stores))
    admin = await stores[0].user_id_by_login_name("admin")
    assert admin is not None
    assert {await store.user_id_by_login_name("admin") for store in stores} == {admin}
    record = await stores[0].get_pat("admintoken")
    assert record is not None
    assert record.user_id == admin
