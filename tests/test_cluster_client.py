"""``storage.cluster.ClusterRedis`` against a real 3-primary Redis Cluster on loopback.

Routing by slot, replies matched to their callers under many concurrent commands, scripts
on one slot (and the cluster's refusal of cross-slot ones), and the redirects of a live
resharding: ``MOVED`` after a slot changed owner, ``ASK`` while it is being migrated, and
writers that keep writing through a migration without losing an acknowledged write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import pytest
from redis.exceptions import ResponseError

from storage.cluster import ClusterRedis, command_key, parse_cluster_url, slot_of
from tests.processes import free_port
from tests.redis_cluster import (
    TestRedisCluster,
    begin_migration,
    end_migration,
    migrate_slot,
    move_keys,
    slot_owner,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(name="cluster")
def _cluster(redis_cluster: TestRedisCluster) -> TestRedisCluster:
    redis_cluster.flush()
    return redis_cluster


@pytest.fixture(name="client")
async def _client(cluster: TestRedisCluster) -> AsyncIterator[ClusterRedis]:
    client = ClusterRedis(cluster.url)
    yield client
    await client.close()


@contextmanager
def half_migrated(cluster: TestRedisCluster, key: str) -> Iterator[int]:
    """``key``'s slot migrating to another primary, ``key`` moved, its slot-mates not yet."""
    slot = slot_of(key)
    source = slot_owner(cluster, slot)
    target = other_primary(cluster, source)
    begin_migration(cluster, slot, source, target)
    try:
        with cluster.client(source) as node:
            node.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", key)
        yield target
    finally:
        move_keys(cluster, slot, source, target)
        end_migration(cluster, slot, target)


def other_primary(cluster: TestRedisCluster, port: int) -> int:
    return next(p for p in cluster.ports if p != port)


# -- pure parts ----------------------------------------------------------------------------------
def test_a_cluster_url_names_its_seed_nodes():
    assert parse_cluster_url("redis+cluster://a:7000,b:7001") == (
        "redis",
        [("a", 7000), ("b", 7001)],
        "",
    )
    assert parse_cluster_url("rediss+cluster://u:p@[::1]:7000/0") == (
        "rediss",
        [("::1", 7000)],
        "u:p@",
    )


@pytest.mark.parametrize(
    "url", ["redis://a:7000", "redis+cluster://", "redis+cluster://a", "redis+cluster://a:99999"]
)
def test_a_bad_cluster_url_is_refused(url: str):
    with pytest.raises(ValueError):
        parse_cluster_url(url)


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (("GET", "k"), "k"),
        (("EVALSHA", "sha", 2, "a", "b", "x"), "a"),
        (("EVAL", "return 1", 0), None),
        (("XREADGROUP", "GROUP", "g", "c", "COUNT", 1, "STREAMS", "s", ">"), "s"),
        (("XINFO", "STREAM", "s"), "s"),
        (("PING",), None),
        (("SCRIPT", "LOAD", "return 1"), None),
    ],
)
def test_the_routing_key_of_a_command(command: tuple[str | int, ...], key: str | None):
    assert command_key(command) == key


def test_hash_tags_put_keys_in_one_slot():
    assert slot_of("sess:{abc}") == slot_of("sess:{abc}:tok") != slot_of("sess:{abd}")


# -- against the cluster -------------------------------------------------------------------------
async def test_each_key_lands_on_the_primary_that_serves_its_slot(
    client: ClusterRedis, cluster: TestRedisCluster
):
    keys = [f"key-{i}" for i in range(300)]
    await asyncio.gather(*(client.execute("SET", key, key.upper()) for key in keys))
    owners = {slot_owner(cluster, slot_of(key)) for key in keys}
    assert owners == set(cluster.ports)  # the keys spread over all three
    for key in keys[:30]:
        with cluster.client(slot_owner(cluster, slot_of(key))) as node:
            assert node.get(key) == key.upper().encode()
    sizes = await client.each_primary("DBSIZE")
    assert sum(sizes.values()) == 300
    assert await client.execute("GET", "key-7") == b"KEY-7"


async def test_many_concurrent_commands_each_get_their_own_reply(client: ClusterRedis):
    count = 3000
    await asyncio.gather(*(client.execute("SET", f"n:{i}", i) for i in range(count)))
    replies = await asyncio.gather(*(client.execute("GET", f"n:{i}") for i in range(count)))
    assert replies == [str(i).encode() for i in range(count)]


async def test_execute_many_keeps_the_order_across_nodes(client: ClusterRedis):
    commands = [("SET", f"m:{i}", f"v{i}") for i in range(50)]
    assert await client.execute_many(*commands) == [b"OK"] * 50
    gets = [("GET", f"m:{i}") for i in range(50)]
    assert await client.execute_many(*gets) == [f"v{i}".encode() for i in range(50)]


async def test_a_script_runs_on_its_slot_and_a_cross_slot_one_is_refused(client: ClusterRedis):
    source = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1"
    assert await client.eval_script(source, ["s:{x}:a", "s:{x}:b"], ["v"]) == 1
    assert await client.execute("GET", "s:{x}:b") == b"v"
    with pytest.raises(ResponseError, match=r"CROSSSLOT|same slot"):
        await client.eval_script(source, ["s:{x}:a", "s:{y}:b"], ["v"])
    assert await client.eval_many("return KEYS[1]", [(["p:1"], []), (["p:2"], [])]) == [
        b"p:1",
        b"p:2",
    ]


async def test_after_a_slot_moved_the_client_follows_moved(
    client: ClusterRedis, cluster: TestRedisCluster
):
    key = "moving:{one}"
    await client.execute("SET", key, "before")
    slot = slot_of(key)
    source = slot_owner(cluster, slot)
    target = other_primary(cluster, source)
    assert migrate_slot(cluster, slot, target) == 1
    assert await client.execute("GET", key) == b"before"  # MOVED, then the new owner
    await client.execute("SET", key, "after")
    with cluster.client(target) as node:
        assert node.get(key) == b"after"


async def test_during_a_migration_the_client_follows_ask(
    client: ClusterRedis, cluster: TestRedisCluster
):
    moved, stays = "mig:{two}:moved", "mig:{two}:stays"
    await client.execute_many(("SET", moved, "m"), ("SET", stays, "s"))
    with half_migrated(cluster, moved) as target:
        assert await client.execute("GET", moved) == b"m"  # ASK: the key is on the target
        assert await client.execute("GET", stays) == b"s"  # still on the source
        await client.execute("SET", "mig:{two}:new", "n")  # a new key goes to the target
        with cluster.client(target) as node:
            pipe = node.pipeline(transaction=False)
            pipe.execute_command("ASKING")
            pipe.get("mig:{two}:new")
            assert pipe.execute()[1] == b"n"
    assert await client.execute_many(("GET", moved), ("GET", stays), ("GET", "mig:{two}:new")) == [
        b"m",
        b"s",
        b"n",
    ]


async def test_a_batched_script_over_many_slots_follows_moved_and_ask(
    client: ClusterRedis, cluster: TestRedisCluster
):
    """eval_many sends one write per node; a call whose slot moved is sent again alone."""
    names = [f"batch:{{{i}}}" for i in range(60)]
    await client.execute_many(*(("SET", name, name) for name in names))
    read = "return redis.call('GET', KEYS[1])"
    calls: list[tuple[list[str], list[str | bytes | int | float]]] = [([n], []) for n in names]
    assert await client.eval_many(read, calls) == [n.encode() for n in names]
    moved_slot = slot_of(names[0])
    migrate_slot(cluster, moved_slot, other_primary(cluster, slot_owner(cluster, moved_slot)))
    with half_migrated(cluster, names[1]):
        # the client's map is stale for one slot (MOVED) and the other is half-way (ASK)
        assert await client.eval_many(read, calls) == [n.encode() for n in names]


async def test_a_batched_script_sent_to_a_node_that_is_gone_is_routed_afresh(
    client: ClusterRedis,
):
    """A stale map naming a node nobody listens on: each call finds the live owner."""
    names = [f"away:{{{i}}}" for i in range(30)]
    await client.execute_many(*(("SET", name, name) for name in names))
    gone = ("127.0.0.1", free_port())  # refused at once: nothing was sent
    for name in names[:10]:
        client._slots[slot_of(name)] = gone  # what a map read before a failover may say
    read = "return redis.call('GET', KEYS[1])"
    calls: list[tuple[list[str], list[str | bytes | int | float]]] = [([n], []) for n in names]
    assert await client.eval_many(read, calls) == [n.encode() for n in names]
    assert gone not in client._slots  # the map was read again


async def test_writers_lose_nothing_while_slots_migrate(
    client: ClusterRedis, cluster: TestRedisCluster
):
    """Eight writers INCR and RPUSH keys of three slots while those slots move twice."""
    keys = [f"load:{{{tag}}}" for tag in ("a", "b", "c")]
    acknowledged: dict[str, int] = dict.fromkeys(keys, 0)
    stop = asyncio.Event()

    async def writer(index: int) -> None:
        n = 0
        while not stop.is_set():
            key = keys[(index + n) % len(keys)]
            await client.execute("RPUSH", key, f"{index}:{n}")
            acknowledged[key] += 1
            n += 1
            await asyncio.sleep(0)

    async def reshard() -> None:
        for _ in range(2):
            for key in keys:
                slot = slot_of(key)
                target = other_primary(cluster, slot_owner(cluster, slot))
                await asyncio.to_thread(migrate_slot, cluster, slot, target)
        stop.set()

    await asyncio.gather(reshard(), *(writer(i) for i in range(8)))
    for key in keys:
        assert await client.execute("LLEN", key) == acknowledged[key]
        assert acknowledged[key] > 0
