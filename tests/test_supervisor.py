"""The supervisor of several workers (real ``python -m app``, SESSIOND_WORKERS=2).

- A SIGKILLed worker is restarted while the other keeps serving: a bounded number of
  failed requests, a new worker listening on the port within seconds.
- SIGTERM drains: in-flight requests complete, new connections are refused, the group
  exits 0 within the grace and no session lease is left in Redis.
- A worker that cannot start (its port is taken) stops the service with a non-zero exit
  instead of a restart loop.

Worker pids come from /proc: the supervisor's children that run multiprocessing's
``spawn_main`` (its resource tracker is a child too).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import redis.asyncio as aioredis

from storage import keys
from tests.processes import server
from tests.support import ADMIN_TOKEN, MASTER_KEY, PASSWORD
from tests.test_workers import _call, _human

pytestmark = pytest.mark.slow
T = TypeVar("T")
Reply = tuple[int, dict[str, Any]]

CONCURRENCY = 8
GRACE_S = 10


def _worker_pids(supervisor: int) -> set[int]:
    """Live workers of ``supervisor``: children running ``spawn_main`` (zombies have none)."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == supervisor and b"spawn_main" in cmdline:
            pids.add(int(entry))
    return pids


def _listening(pids: set[int], port: int) -> set[int]:
    """Those of ``pids`` that hold a listening IPv4 socket on ``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    found = set()
    for pid in pids:
        with_fds = Path(f"/proc/{pid}/fd")
        try:
            targets = {os.readlink(fd) for fd in with_fds.iterdir()}
        except OSError:
            continue
        if targets & inodes:
            found.add(pid)
    return found


def _serving_workers(supervisor: int, port: int) -> set[int]:
    return _listening(_worker_pids(supervisor), port)


def _eventually(probe: Callable[[], T], accept: Callable[[T], bool], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if accept(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _client() -> aiohttp.ClientSession:
    # a new connection per request, so the kernel spreads requests over the workers
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=20),
    )


async def _load(url: str, until: float, results: list[tuple[float, bool]]) -> None:
    loop = asyncio.get_running_loop()
    async with _client() as http:
        while loop.time() < until:
            try:
                async with http.get(f"{url}/healthz") as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, OSError):
                ok = False
            results.append((loop.time(), ok))


async def test_a_killed_worker_is_restarted_while_the_other_keeps_serving(redis_url):
    with server(redis_url, workers=2) as running:
        supervisor, port = running.proc.pid, _port(running.url)
        before = _eventually(lambda: _serving_workers(supervisor, port), _two, 10)
        assert len(before) == 2
        victim = min(before)
        loop = asyncio.get_running_loop()
        results: list[tuple[float, bool]] = []
        until = loop.time() + 3.0
        load = [asyncio.create_task(_load(running.url, until, results)) for _ in range(CONCURRENCY)]
        await asyncio.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        killed_at = loop.time()
        await asyncio.gather(*load)

        failed = [at for at, ok in results if not ok]
        served_after = [at for at, ok in results if ok and at > killed_at]
        assert all(at >= killed_at for at in failed), "requests failed before the kill"
        assert len(failed) <= 2 * CONCURRENCY, f"{len(failed)} failed requests"
        assert len(served_after) >= 50, f"only {len(served_after)} requests after the kill"
        assert running.proc.poll() is None, "the supervisor stopped"
        after = _eventually(
            lambda: _serving_workers(supervisor, port), lambda p: _two(p) and victim not in p, 10
        )
        assert victim not in after
        assert len(after) == 2
        assert before - {victim} <= after  # the survivor is still the same process


def _two(pids: set[int]) -> bool:
    return len(pids) == 2


async def _refused_after(port: int, timeout_s: float) -> float:
    """Seconds until a connection to ``port`` is refused; fails after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except (ConnectionRefusedError, ConnectionResetError):
            # reset: the listener closed with this connection still in its accept queue
            return time.monotonic() - started
        writer.close()
        await asyncio.sleep(0.02)
    pytest.fail(f"connections still accepted {timeout_s} s after SIGTERM")


async def _slow_requests(
    http: aiohttp.ClientSession, base: str, store: aioredis.Redis
) -> tuple[asyncio.Task[Reply], asyncio.Task[Reply]]:
    """A CreateSession and a SetSession, each verifying a password; once both are in flight."""
    user = await _human(http, base)
    status, created = await _call(
        http, "POST", f"{base}/v2/sessions", {"checks": {"user": {"userId": user}}}
    )
    assert status == 201, created
    sid = created["sessionId"]
    password = {"password": {"password": PASSWORD}}
    create = asyncio.create_task(
        _call(
            http, "POST", f"{base}/v2/sessions", {"checks": {"user": {"userId": user}, **password}}
        )
    )
    update = asyncio.create_task(
        _call(http, "PATCH", f"{base}/v2/sessions/{sid}", {"checks": password})
    )
    for _ in range(500):  # the update holds the lease while it verifies the password
        if await store.exists(keys.session_lease(sid)):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the update never took the lease")
    assert not create.done()
    assert not update.done()
    return create, update


async def test_sigterm_drains_in_flight_requests_then_exits_zero(redis, redis_url):
    slow = {
        "workers": 2,
        "argon2_time_cost": 3,
        "argon2_memory_kib": 262144,  # one verify takes most of a second
        "lease_ttl_ms": 60_000,  # a lease not given back would outlive the test
        "shutdown_grace_s": GRACE_S,
    }
    with server(redis_url, **slow) as running:
        async with _client() as http:
            create, update = await _slow_requests(http, running.url, redis)
            os.kill(running.proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            refused_s = await _refused_after(_port(running.url), 3.0)
            drained_first = create.done() and update.done()
            status, body = await create
            assert status == 201, body
            status, body = await update
            assert status == 200, body
        assert not drained_first, f"refused only {refused_s:.2f} s after SIGTERM, after the drain"
        returncode = await asyncio.to_thread(running.proc.wait, GRACE_S)
        assert returncode == 0
        assert time.monotonic() - signalled < GRACE_S
    assert await redis.keys(keys.session_lease("*")) == []


def _environment(redis_url: str, port: int, **env: str | int) -> dict[str, str]:
    return {
        **os.environ,
        "SESSIOND_REDIS_URL": redis_url,
        "SESSIOND_HTTP_PORT": str(port),
        "SESSIOND_ADMIN_TOKEN": ADMIN_TOKEN,
        "SESSIOND_MASTER_KEY": MASTER_KEY,
        "SESSIOND_LOG_LEVEL": "warning",
        "SESSIOND_LOG_FORMAT": "json",
        **{f"SESSIOND_{name.upper()}": str(value) for name, value in env.items()},
    }


def test_a_worker_that_crashes_at_start_stops_the_service_with_a_nonzero_exit(redis_url, tmp_path):
    log_path = tmp_path / "sessiond.log"
    with socket.socket() as taken, log_path.open("wb") as log_file:
        taken.bind(("127.0.0.1", 0))  # no SO_REUSEPORT: the workers cannot bind next to it
        taken.listen()
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"],
            env=_environment(redis_url, taken.getsockname()[1], workers=2),
            stderr=log_file,
            start_new_session=True,
        )
        try:
            returncode = proc.wait(40)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        elapsed = time.monotonic() - started
    assert returncode == 1
    assert elapsed < 30
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]
    events = [line["event"] for line in lines]
    assert "worker keeps failing at start; stopping all workers" in events
    assert 4 <= events.count("worker died; restarting it") <= 9
