"""Every outbox key lives in the stream's hash slot, and earlier versions' keys move there.

The acknowledging script and the MULTI blocks of the delivery worker write several outbox
keys at once, which a Redis Cluster allows only within one slot: the stream's name is the
others' hash tag. Processes of an earlier version used untagged names; every process moves
those at start (merging what an earlier process wrote meanwhile).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from storage import keys
from storage.cluster import ClusterRedis, slot_of
from storage.outbox import GROUP, SENT_MARKER_TTL_MS, adopt_earlier_keys, open_outbox
from storage.scripts import source
from tests.redis_cluster import TestRedisCluster
from tests.test_delivery import PARTITIONS, make_job


def test_every_outbox_key_is_in_the_streams_slot():
    outbox_keys = [keys.OUTBOX, keys.OUTBOX_DEAD, keys.OUTBOX_RETRY, keys.OUTBOX_ATTEMPTS]
    outbox_keys.append(keys.outbox_sent("job-1"))
    assert {slot_of(key) for key in outbox_keys} == {slot_of(keys.OUTBOX)}


@pytest.mark.node_only("earlier versions ran on one node only: a cluster never holds their keys")
async def test_earlier_outbox_keys_move_and_merge_at_start(fast_redis, redis: aioredis.Redis):
    earlier = {now: old for old, now in keys.EARLIER_OUTBOX_KEYS.items()}
    old_attempts, old_retry = earlier[keys.OUTBOX_ATTEMPTS], earlier[keys.OUTBOX_RETRY]
    old_dead = earlier[keys.OUTBOX_DEAD]
    await redis.hset(old_attempts, mapping={"1-0": 2, "2-0": 5})
    await redis.zadd(old_retry, {"1-0": 100})
    await redis.xadd(old_dead, {"reason": "earlier"})
    await redis.hset(keys.OUTBOX_ATTEMPTS, "2-0", 1)  # a new process counted meanwhile
    await adopt_earlier_keys(fast_redis)
    await adopt_earlier_keys(fast_redis)  # every process runs it: idempotent
    assert await redis.hgetall(keys.OUTBOX_ATTEMPTS) == {b"1-0": b"2", b"2-0": b"1"}
    assert await redis.zrange(keys.OUTBOX_RETRY, 0, -1, withscores=True) == [(b"1-0", 100.0)]
    dead: Any = await redis.xrange(keys.OUTBOX_DEAD)
    assert [fields for _, fields in dead] == [{b"reason": b"earlier"}]
    assert not await redis.exists(old_attempts, old_retry, old_dead)


async def test_the_acknowledging_script_runs_on_a_cluster(redis_cluster: TestRedisCluster):
    redis_cluster.flush()
    client: Any = ClusterRedis(redis_cluster.url)
    try:
        job = make_job("123456")
        await client.execute("XGROUP", "CREATE", keys.OUTBOX, GROUP, "0", "MKSTREAM")
        entry_id = await client.execute("XADD", keys.OUTBOX, "*", "id", job.id)
        await client.execute("XREADGROUP", "GROUP", GROUP, "w", "STREAMS", keys.OUTBOX, ">")
        await client.execute("HSET", keys.OUTBOX_ATTEMPTS, entry_id, 1)
        script_keys = [keys.OUTBOX, keys.OUTBOX_ATTEMPTS, keys.OUTBOX_RETRY]
        script_keys.append(keys.outbox_sent(job.id))
        args = [GROUP, entry_id, 1, SENT_MARKER_TTL_MS]
        assert await client.eval_script(source("outbox_delivered"), script_keys, args) == 1
        assert await client.eval_script(source("outbox_delivered"), script_keys, args) == 0
        assert await client.execute("XLEN", keys.OUTBOX) == 0
        assert not await client.execute("HEXISTS", keys.OUTBOX_ATTEMPTS, entry_id)
    finally:
        await client.close()


async def test_a_job_sent_by_the_worker_publishes_its_event_once(redis, redis_url):
    box = open_outbox(redis_url, partitions=PARTITIONS, event_maxlen=1000)
    try:
        await box.ensure_group()
        job = make_job("123456", session_id="s1")
        await box.enqueue(job)
        await box.enqueue(job)  # the same job twice (a replayed relay entry)
        held = await box.read("w", 10, 10)
        assert [await box.delivered(entry, 0, sent=True) for entry in held] == [True, False]
        stream = keys.event_stream(keys.event_partition("s1", PARTITIONS))
        sent = [f for _, f in await redis.xrange(stream) if f[b"type"] == job.sent_event.encode()]
        assert len(sent) == 1
    finally:
        await box.close()
