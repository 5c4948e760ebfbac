"""Real ``python -m app`` processes for tests: started on a free port, stopped afterwards.

Each server runs in its own process group (so a test can SIGKILL the whole group like a
crash) against the suite's Redis, with cheap argon2 and no caches unless a test says so.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from tests.support import ADMIN_TOKEN, MASTER_KEY, WEBAUTHN_ORIGIN


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(
        self, url: str, port: int, proc: subprocess.Popen[bytes], log: Path | None = None
    ) -> None:
        self.url = url
        self.port = port
        self.proc = proc
        self.log = log

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, exactly like a crashed or OOM-killed worker."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)

    def lines(self) -> list[dict[str, Any]]:
        """Every line of the captured stderr, each of which must be one JSON object."""
        assert self.log is not None, "start the server with stderr=<path>"
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def server(redis_url: str, **env: str | float) -> AbstractContextManager[Server]:
    """``python -m app`` in its own process group; stopped (or killed) afterwards.

    ``env`` are settings by field name (``workers=2``).
    """
    return _running(redis_url, None, env)


def logged_server(redis_url: str, log: Path, **env: str | float) -> AbstractContextManager[Server]:
    """``server``, its stderr (the JSON log) written to ``log``."""
    return _running(redis_url, log, env)


@contextmanager
def _running(redis_url: str, stderr: Path | None, env: dict[str, str | float]) -> Iterator[Server]:
    port = int(env.pop("http_port", 0)) or free_port()  # a test may need the port up front
    variables = {
        **os.environ,
        "SESSIOND_REDIS_URL": redis_url,
        "SESSIOND_HTTP_PORT": str(port),
        "SESSIOND_ADMIN_TOKEN": ADMIN_TOKEN,
        "SESSIOND_MASTER_KEY": MASTER_KEY,
        "SESSIOND_LOG_LEVEL": "warning",
        "SESSIOND_LOG_FORMAT": "json",
        "SESSIOND_CACHE_TTL_MS": "0",
        "SESSIOND_ARGON2_TIME_COST": "1",
        "SESSIOND_ARGON2_MEMORY_KIB": "1024",
        "SESSIOND_WEBAUTHN_ORIGINS": WEBAUTHN_ORIGIN,
        **{f"SESSIOND_{name.upper()}": str(value) for name, value in env.items()},
    }
    output = stderr.open("wb") if stderr is not None else None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=variables, stderr=output, start_new_session=True
        )
    finally:
        if output is not None:
            output.close()  # the child has its own copy
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield Server(url, port, proc, stderr)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
