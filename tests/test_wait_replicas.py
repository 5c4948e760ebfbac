"""``SESSIOND_REDIS_WAIT_REPLICAS``: a write is answered once replicas have it, or it is a 503.

A real primary and a real replica (``--replicaof``) on loopback. With the replica running, a
session the service created is on the replica the moment the 201 arrives; with the replica
frozen (SIGSTOP), the write runs on the primary but the request answers 503 within the wait
timeout instead of claiming a durability it does not have; reads never wait.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
import redis

from storage import keys
from storage.embedded import parent_death_preexec
from storage.multiplex import MultiplexedRedis, NotReplicatedError
from storage.scripts import source
from tests.processes import free_port, server
from tests.redis_server import binary_kind, find_binary
from tests.support import ADMIN_TOKEN

pytestmark = pytest.mark.timeout(120)
WRITE = "redis.call('SET', KEYS[1], ARGV[1]); return 1"


def _spawn(binary: Path, directory: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    directory.mkdir()
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), *extra]  # fmt: skip
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=parent_death_preexec(),
        process_group=0,
    )


@contextmanager
def primary_and_replica() -> Iterator[tuple[int, int, subprocess.Popen[bytes]]]:
    binary = find_binary(binary_kind())
    workdir = Path(tempfile.mkdtemp(prefix="sessiond-replica-"))
    primary_port, replica_port = free_port(), free_port()
    # no 5 s wait before the first full sync (the default for diskless replication)
    primary = _spawn(binary, workdir / "primary", primary_port, "--repl-diskless-sync-delay", "0")
    replica = _spawn(
        binary, workdir / "replica", replica_port, "--replicaof", "127.0.0.1", str(primary_port)
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=primary_port) as node:
                    if node.info("replication").get("connected_slaves") == 1:
                        with redis.Redis(port=replica_port) as copy:
                            if copy.info("replication").get("master_link_status") == "up":
                                break
            except redis.ConnectionError:
                pass
            time.sleep(0.05)
        else:
            raise AssertionError("the replica did not connect")
        with redis.Redis(port=primary_port) as node:  # the replica acknowledges writes now
            node.set("warm-up", "1")
            assert node.execute_command("WAIT", 1, 10_000) == 1
        yield primary_port, replica_port, replica
    finally:
        for proc in (replica, primary):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.wait(10)


@contextmanager
def frozen(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


async def test_a_write_script_returns_once_the_replica_has_it_or_raises():
    with primary_and_replica() as (primary, replica, replica_proc):
        client = MultiplexedRedis(
            f"redis://127.0.0.1:{primary}", wait_replicas=1, wait_timeout_ms=300
        )
        try:
            assert await client.eval_script(WRITE, ["k1"], ["v1"]) == 1
            with redis.Redis(port=replica) as copy:
                assert copy.get("k1") == b"v1"  # no sleep: the WAIT already confirmed it
            with frozen(replica_proc):
                started = time.monotonic()
                with pytest.raises(NotReplicatedError, match="0 of 1 replicas"):
                    await client.eval_script(WRITE, ["k2"], ["v2"])
                assert time.monotonic() - started < 1.5
                assert await client.execute("GET", "k2") == b"v2"  # it did run on the primary
                read_only = source("fetch")
                rows = await asyncio.wait_for(
                    client.eval_script(read_only, [keys.session("none")], []), 0.25
                )
                assert rows == [None]  # a read-only script does not wait
            assert await client.eval_script(WRITE, ["k3"], ["v3"]) == 1
        finally:
            await client.close()


async def test_the_service_answers_a_write_replicas_did_not_confirm_with_503():
    with primary_and_replica() as (primary, replica, replica_proc):
        url = f"redis://127.0.0.1:{primary}"
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with server(
            url, redis_wait_replicas=1, redis_wait_timeout_ms=300, http_port=free_port()
        ) as running:
            async with aiohttp.ClientSession(headers=headers) as http:
                async with http.post(f"{running.url}/v2/sessions", json={}) as created:
                    assert created.status == 201, await created.text()
                    session_id = (await created.json())["sessionId"]
                with redis.Redis(port=replica) as copy:
                    assert copy.exists(keys.session(session_id))
                with frozen(replica_proc):
                    async with http.post(f"{running.url}/v2/sessions", json={}) as refused:
                        assert refused.status == 503, await refused.text()
                        body = await refused.json()
                        assert body["details"][0]["id"] == "STORAGE-down"
                    async with http.get(f"{running.url}/v2/sessions/{session_id}") as read:
                        assert read.status == 200  # reads do not wait
                async with http.post(f"{running.url}/v2/sessions", json={}) as again:
                    assert again.status == 201
