"""A redis-server that one test owns and may crash, freeze, restart and reconfigure.

Unlike the suite's shared server (tests/redis_server.py) it keeps an AOF with
``appendfsync always``, so every write Redis acknowledged survives a SIGKILL, and it is
started and signalled by the test. It listens only on a unix socket in a fresh temp dir and
dies with the test process (PR_SET_PDEATHSIG); ``close()`` kills it and removes the dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from storage.embedded import log_tail, parent_death_preexec, wait_until_ready
from tests.redis_server import binary_kind, find_binary


def server_binary() -> Path:
    """The binary of SESSIOND_TEST_REDIS (valkey or debian); an external URL cannot be
    crashed or frozen by a test, so it falls back to the bundled valkey."""
    return find_binary(binary_kind())


class FaultRedis:
    """One server process in ``directory``; restartable on the same dir, socket and AOF."""

    def __init__(self, *args: str, appendonly: bool = True) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sessiond-fault-"))
        self.socket_path = self.directory / "redis.sock"
        self.logfile = self.directory / "server.log"
        self.binary = server_binary()
        self.args = args
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def argv(self, *extra: str) -> list[str]:
        return [
            str(self.binary),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--logfile", str(self.logfile),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "always",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            *self.args,
            *extra,
        ]  # fmt: skip

    def spawn(self, *extra: str) -> None:
        """Start the process and return at once (it may still be loading its AOF)."""
        with self.logfile.open("ab") as output:
            self.proc = subprocess.Popen(
                self.argv(*extra),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                preexec_fn=parent_death_preexec(),
                process_group=0,
            )

    def start(self, *extra: str) -> FaultRedis:
        """Start and block until it answers PING (only before the app's loop is busy)."""
        self.spawn(*extra)
        assert self.proc is not None
        wait_until_ready(self.proc, self.socket_path, self.logfile, timeout_s=30)
        return self

    async def wait_ready(self, timeout_s: float = 30.0) -> float:
        """Poll PING without blocking the loop; the seconds it took."""
        started = time.monotonic()
        client = self.client(timeout_s=1)
        try:
            while time.monotonic() - started < timeout_s:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited:\n{log_tail(self.logfile)}")
                with contextlib.suppress(redis.RedisError, OSError):
                    if await client.ping():
                        return time.monotonic() - started
                await asyncio.sleep(0.02)
        finally:
            await client.aclose()
        raise RuntimeError(f"redis-server not ready in {timeout_s}s:\n{log_tail(self.logfile)}")

    def client(self, *, timeout_s: float = 5.0, password: str | None = None) -> aioredis.Redis:
        """A control connection of its own, failing fast (no retries), bytes in and out."""
        return aioredis.Redis(
            unix_socket_path=str(self.socket_path),
            password=password,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            single_connection_client=True,
        )

    def signal(self, signum: signal.Signals) -> None:
        assert self.proc is not None, "server never started"
        assert self.proc.poll() is None, "server not running"
        os.kill(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF flush; only what was fsynced survives."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def close(self) -> None:
        """Kill whatever runs (a stopped process dies of SIGKILL too), remove the dir."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)
