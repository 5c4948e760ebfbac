"""The event consumer reads every partition with its own reader, on one node and on a cluster.

A read over several streams names keys of several slots, which a Redis Cluster refuses; so
each partition has its own reader wherever its stream lives. Every event is handed over once
per group, and a consumer restarted under its name first gets what it was handed but never
acknowledged.
"""

from __future__ import annotations

from typing import Any

import pytest

from storage import keys
from storage.cluster import ClusterRedis, slot_of
from storage.event_tail import TailOptions, tail
from tests.redis_cluster import TestRedisCluster

PARTITIONS = 6


async def publish(client: Any, per_partition: int) -> set[str]:
    """``per_partition`` events in every partition stream; their aggregate:sequence names."""
    names = set()
    for partition in range(PARTITIONS):
        for seq in range(1, per_partition + 1):
            aggregate = f"agg{partition}"
            await client.execute(
                "XADD", keys.event_stream(partition), "*",
                "aggregateId", aggregate, "sequence", str(seq), "type", "session.added",
            )  # fmt: skip
            names.add(f"{aggregate}:{seq}")
    return names


async def consume(url: str, consumer: str = "c1", **options: Any) -> list[str]:
    seen: list[str] = []
    opts = TailOptions(
        group="g", consumer=consumer, from_start=True, until_idle=True, block_ms=200, **options
    )

    def on_event(_: str, fields: dict[str, str]) -> None:
        seen.append(f"{fields['aggregateId']}:{fields['sequence']}")

    assert await tail(url, PARTITIONS, opts, on_event) == len(seen)
    return seen


async def handed_over_once(url: str, client: Any) -> None:
    published = await publish(client, per_partition=5)
    seen = await consume(url)
    assert sorted(seen) == sorted(published)  # every event, each once
    for partition in range(PARTITIONS):  # in order within a partition
        mine = [int(name.split(":")[1]) for name in seen if name.startswith(f"agg{partition}:")]
        assert mine == sorted(mine)
    assert await consume(url) == []  # acknowledged: the group does not hand them out again

    more = await publish(client, per_partition=2)  # a consumer handed events then died
    stream = keys.event_stream(0)
    handed = await client.execute(
        "XREADGROUP", "GROUP", "g", "c2", "COUNT", 1, "STREAMS", stream, ">"
    )
    assert handed
    back = await consume(url, consumer="c2")
    assert sorted(back) == sorted(more)  # its own unacknowledged one included, once
    pending = await client.execute("XPENDING", stream, "g")
    assert int(pending[0]) == 0


async def test_every_partition_is_read_once_on_one_node(fast_redis, redis, redis_url):
    await handed_over_once(redis_url, fast_redis)


async def test_every_partition_is_read_where_it_lives_on_a_cluster(
    redis_cluster: TestRedisCluster,
):
    redis_cluster.flush()
    client = ClusterRedis(redis_cluster.url)
    try:
        streams = [keys.event_stream(p) for p in range(PARTITIONS)]
        assert len({slot_of(stream) for stream in streams}) == PARTITIONS
        await handed_over_once(redis_cluster.url, client)
    finally:
        await client.close()


@pytest.mark.parametrize("count", [1, 7])
async def test_a_count_stops_the_consumer_and_the_rest_waits(fast_redis, redis, redis_url, count):
    published = await publish(fast_redis, per_partition=3)
    first = await consume(redis_url, count=count)
    assert len(first) >= count
    rest = await consume(redis_url)
    assert sorted(first + rest) == sorted(published)  # nothing lost, nothing twice
