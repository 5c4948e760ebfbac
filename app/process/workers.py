"""Worker processes: N copies of the HTTP server sharing one port through SO_REUSEPORT.

Workers hold no state of their own (sessions live in Redis; leases serialise writers), so
the kernel may hand any connection to any worker. The parent only supervises: it starts
the workers, forwards SIGTERM/SIGINT to them, and if one dies on its own it stops the rest
and exits non-zero, so the service manager (systemd, a container runtime) restarts the
whole group instead of leaving it running with fewer workers than configured.

Workers are started with the *spawn* method: a fresh interpreter, no inherited event loop,
Redis connections or threads. ``serve`` therefore travels by pickle and must be a
module-level function; it runs in each worker and must configure logging itself and call
``web.run_app(..., reuse_port=True)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

from app.process.settings import Settings

Serve = Callable[[Settings], None]

#: How long stopped workers get to drain before SIGKILL; above run_app's shutdown_timeout.
STOP_TIMEOUT_S = 75.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1

log = structlog.get_logger(__name__)


def run_workers(settings: Settings, serve: Serve, *, stop_timeout_s: float = STOP_TIMEOUT_S) -> int:
    """Run ``serve(settings)`` in ``settings.workers`` processes; the exit status for main.

    With one worker ``serve`` runs in this process (nothing to supervise). Otherwise this
    blocks until every worker has exited: 0 after SIGTERM/SIGINT with clean worker exits,
    1 if a worker died unexpectedly or failed to stop cleanly. Call it from the main
    thread (signal handlers can only be installed there).
    """
    if settings.workers == 1:
        serve(settings)
        return 0
    supervisor = _Supervisor(settings, serve, stop_timeout_s)
    with supervisor.forwarding_signals():
        return supervisor.run()


def _worker_main(serve: Serve, settings: Settings, parent_pid: int) -> None:
    """Entry point in each worker: detach from the terminal's signals, die with the parent.

    Its own process group means a terminal Ctrl-C reaches only the parent, which forwards
    it once; otherwise each worker would get SIGINT twice and the second could interrupt
    aiohttp's graceful shutdown. PDEATHSIG ensures a SIGKILLed parent leaves no worker
    holding the port.
    """
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            return
    serve(settings)


class _Supervisor:
    """The parent's bookkeeping: the workers, whether a stop was requested, whom we told.

    Each worker is signalled at most once per stop: aiohttp keeps its SIGTERM handler
    during its graceful shutdown, and a second signal would abort that shutdown halfway.
    """

    def __init__(self, settings: Settings, serve: Serve, stop_timeout_s: float) -> None:
        self.settings = settings
        self.serve = serve
        self.stop_timeout_s = stop_timeout_s
        self.procs: list[BaseProcess] = []
        self.signalled: set[int] = set()
        self.stopping = False

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator[None]:
        """Install the forwarding handlers for the supervisor's lifetime, then restore."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Graceful stop: pass the signal on once; the wait loop then collects the workers."""
        self.request_stop(signum)

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Mark the stop and signal every running worker that has not been told yet."""
        self.stopping = True
        for proc in self.procs:
            pid = proc.pid
            if pid is None or pid in self.signalled or proc.exitcode is not None:
                continue
            self.signalled.add(pid)
            with contextlib.suppress(ProcessLookupError):  # exited since the check
                os.kill(pid, signum)

    def run(self) -> int:
        try:
            self._start_all()
            worker_died = self._wait_first_exit()
        finally:
            self.request_stop()  # no-op for workers already told; stops the rest
            unclean = self._join_all()
        return 1 if worker_died or unclean else 0

    def _start_all(self) -> None:
        """Start the workers; a signal during start-up stops starting more."""
        ctx = multiprocessing.get_context("spawn")
        for index in range(self.settings.workers):
            if self.stopping:
                return
            proc = ctx.Process(
                target=_worker_main,
                args=(self.serve, self.settings, os.getpid()),
                name=f"sessiond-worker-{index}",
            )
            proc.start()
            self.procs.append(proc)
        log.info("workers started", workers=len(self.procs), pids=[p.pid for p in self.procs])

    def _wait_first_exit(self) -> bool:
        """Block until some worker exits; True if it died on its own (no stop requested)."""
        by_sentinel = {p.sentinel: p for p in self.procs if p.exitcode is None}
        if not by_sentinel:
            return not self.stopping
        ready = wait(list(by_sentinel))
        if self.stopping:
            return False
        for proc in (p for sentinel, p in by_sentinel.items() if sentinel in ready):
            # The sentinel fires when the worker's fds close, a moment before it is reapable.
            proc.join()
            log.error("worker died", worker=proc.name, pid=proc.pid, exitcode=proc.exitcode)
        return True

    def _join_all(self) -> bool:
        """Wait for every worker, SIGKILL those that outlive the timeout; True if any failed."""
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None:
                log.error("worker did not stop; killing it", worker=proc.name, pid=proc.pid)
                proc.kill()
                proc.join()
        clean = (0, -signal.SIGTERM, -signal.SIGINT)
        unclean = [p for p in self.procs if p.exitcode not in clean]
        for proc in unclean:
            log.error("worker exited uncleanly", worker=proc.name, exitcode=proc.exitcode)
        return bool(unclean)
