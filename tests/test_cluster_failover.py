"""A primary of a real Redis Cluster dies under load; its replica takes over; the client goes on.

Three primaries with one replica each on loopback. Writers RPUSH to keys on every primary
through one ``ClusterRedis`` while one primary is SIGKILLed. The cluster promotes its replica
(node timeout 2 s); the client, never restarted, reaches the new primary through its slot-map
refresh. What it must show: only retryable errors while the slot has no primary (the whole
cluster answers CLUSTERDOWN then, as Redis requires full coverage by default), writes to that
slot acknowledged again after the promotion, nothing lost on the other primaries, and on the
killed one at most what Redis's asynchronous replication can lose (the writes acknowledged in
the moment before the kill that had not reached the replica), counted and bounded here.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from storage import keys as storage_keys
from storage.cluster import ClusterRedis, slot_of
from storage.multiplex import ReplyLostError
from tests.processes import logged_server
from tests.redis_cluster import TestRedisCluster, slot_owner, slots_served_by, start_test_cluster
from tests.redis_server import binary_kind
from tests.support import Api

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(name="replicated_cluster")
def _replicated_cluster() -> Iterator[TestRedisCluster]:
    cluster = start_test_cluster(binary_kind(), replicas=True)
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_a_killed_primary_is_replaced_and_the_client_recovers_without_restart(
    replicated_cluster: TestRedisCluster,
):
    cluster = replicated_cluster
    keys = [f"fo:{{{tag}}}" for tag in "abcdefghijkl"]
    owners = {key: slot_owner(cluster, slot_of(key)) for key in keys}
    assert set(owners.values()) == set(cluster.ports)  # every primary holds some
    victim = owners[keys[0]]
    replica = cluster.replicas[victim]
    acknowledged = dict.fromkeys(keys, 0)
    maybe_ran = dict.fromkeys(keys, 0)
    after_promotion = dict.fromkeys(keys, 0)
    errors: list[str] = []
    promoted = asyncio.Event()
    stop = asyncio.Event()
    client = ClusterRedis(cluster.url, timeout_s=1.0)

    async def writer(key: str) -> None:
        while not stop.is_set():
            try:
                await client.execute("RPUSH", key, "x")
            except (RedisConnectionError, RedisTimeoutError, ResponseError) as exc:
                # while a slot has no primary the whole cluster answers CLUSTERDOWN (full
                # coverage): the service maps it to 503 STORAGE-clusterdown, a retry
                if isinstance(exc, ResponseError) and not str(exc).startswith("CLUSTERDOWN"):
                    raise
                errors.append(
                    str(exc).split(" ", 1)[0]
                    if isinstance(exc, ResponseError)
                    else type(exc).__name__
                )
                if isinstance(exc, RedisTimeoutError | ReplyLostError):
                    maybe_ran[key] += 1  # sent, its reply lost: it may have been applied
                await asyncio.sleep(0.05)
                continue
            acknowledged[key] += 1
            if promoted.is_set():
                after_promotion[key] += 1
            await asyncio.sleep(0.002)

    async def kill_and_wait() -> float:
        await asyncio.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(cluster.by_port[victim].pid, signal.SIGKILL)
        while slot_owner_port(cluster, slot_of(keys[0]), avoid=victim) != replica:
            assert time.monotonic() - killed_at < 30, "the replica was not promoted"
            await asyncio.sleep(0.1)
        promoted.set()
        took = time.monotonic() - killed_at
        await asyncio.sleep(3.0)  # longer than one command's whole retry budget (~1.3 s)
        stop.set()
        return took

    try:
        outcomes = await asyncio.gather(kill_and_wait(), *(writer(key) for key in keys))
    finally:
        await client.close()
    took = outcomes[0]
    assert took is not None
    assert took < 15
    assert set(errors) <= {
        "ConnectionError", "ReplyLostError", "TimeoutError", "CircuitOpenError", "CLUSTERDOWN"
    }  # fmt: skip
    victims = [key for key in keys if owners[key] == victim]
    assert all(after_promotion[key] > 0 for key in keys), after_promotion
    reader = ClusterRedis(cluster.url)
    try:
        for key in keys:
            stored = await reader.execute("LLEN", key)
            if key in victims:
                # asynchronous replication: the last writes before the kill may be lost,
                # never more than the writers could send in one replication lag (here < 50);
                # a write whose reply was lost may have run, and none was sent twice
                top = acknowledged[key] + maybe_ran[key]
                assert acknowledged[key] - 50 <= stored <= top, (key, stored, maybe_ran[key])
            else:
                assert acknowledged[key] <= stored <= acknowledged[key] + maybe_ran[key], key
    finally:
        await reader.close()


def slot_owner_port(cluster: TestRedisCluster, slot: int, *, avoid: int) -> int | None:
    """The owner of ``slot`` as a surviving node sees it (the killed one cannot answer)."""
    survivor = next(port for port in cluster.ports if port != avoid)
    try:
        return slot_owner(_survivor_view(cluster, survivor), slot)
    except Exception:
        return None


def _survivor_view(cluster: TestRedisCluster, port: int) -> TestRedisCluster:
    return TestRedisCluster(kind=cluster.kind, ports=[port])


#: Most acknowledged sessions a failover may lose: those written to the killed primary in
#: its last replication lag (asynchronous replication; SESSIOND_REDIS_WAIT_REPLICAS closes it).
MOST_LOST = 50
SERVICE_CLIENTS = 8


async def test_the_service_rides_out_a_primary_failover_without_restart(
    replicated_cluster: TestRedisCluster, tmp_path: Path
):
    """Two workers on the replicated cluster, eight clients creating and setting sessions; a
    primary is SIGKILLed. Only retryable answers meanwhile; after the promotion sessions land
    on every primary again; every acknowledged session on the survivors reads back, and at
    most the replication lag's last ones on the killed primary are gone."""
    cluster = replicated_cluster
    victim = cluster.ports[1]
    statuses: dict[int, int] = {}
    acknowledged: dict[str, int] = {}  # session id -> the primary its slot was on
    after_promotion: set[int] = set()  # primaries that took a create after the promotion
    promoted = asyncio.Event()
    stop = asyncio.Event()
    owners: dict[int, int] = {}

    def owner_of(sid: str) -> int:
        slot = slot_of(storage_keys.session(sid))
        if slot not in owners:
            owners[slot] = slot_owner(cluster, slot)
        return owners[slot]

    with logged_server(cluster.url, tmp_path / "log", workers=2) as running:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            api = Api(http)  # type: ignore[arg-type]  # the same request() as a test client
            user = await api.human()
            for port in cluster.ports:  # the slot map before the kill, for every session
                for slot in slots_served_by(cluster, port):
                    owners[slot] = port

            async def client() -> None:
                while not stop.is_set():
                    created = await api.create({"checks": {"user": {"userId": user}}})
                    statuses[created.status] = statuses.get(created.status, 0) + 1
                    if created.status != 201:
                        await asyncio.sleep(0.05)
                        continue
                    sid = created.body["sessionId"]
                    acknowledged[sid] = owner_of(sid)
                    if promoted.is_set():
                        after_promotion.add(acknowledged[sid])

            async def kill_and_wait() -> float:
                await asyncio.sleep(1.5)
                killed_at = time.monotonic()
                os.kill(cluster.by_port[victim].pid, signal.SIGKILL)
                probe = slots_served_by(cluster, victim)[0]
                while slot_owner_port(cluster, probe, avoid=victim) != cluster.replicas[victim]:
                    assert time.monotonic() - killed_at < 30, "the replica was not promoted"
                    await asyncio.sleep(0.1)
                owners.clear()  # read afresh from a survivor from now on
                cluster.ports = [p for p in cluster.ports if p != victim]
                cluster.ports.append(cluster.replicas[victim])
                promoted.set()
                took = time.monotonic() - killed_at
                await asyncio.sleep(4.0)
                stop.set()
                return took

            outcomes = await asyncio.gather(
                kill_and_wait(), *(client() for _ in range(SERVICE_CLIENTS))
            )
            took = outcomes[0]
            assert (await http.get("/readyz")).status == 200
            lost = [sid for sid in acknowledged if (await api.get(sid)).status != 200]
    print(
        f"\npromoted after {took:.1f} s; answers {sorted(statuses.items())}; "
        f"{len(acknowledged)} sessions acknowledged, {len(lost)} lost"
    )
    assert set(statuses) <= {201, 409, 503}, statuses  # retryable answers only
    assert statuses[201] > 100, statuses  # the load ran
    assert after_promotion == set(cluster.ports), "some primary took no create after promotion"
    assert all(acknowledged[sid] == victim for sid in lost), "a survivor's session was lost"
    assert len(lost) <= MOST_LOST, lost
