"""Worker processes: N copies of the HTTP server sharing one port through SO_REUSEPORT.

Workers hold no state of their own (sessions live in Redis; leases serialise writers), so
the kernel may hand any connection to any worker, and losing one loses only the requests it
was serving. The parent supervises them, much like gunicorn's arbiter:

- A worker that exits without a stop being requested (a crash, the OOM killer, SIGKILL) is
  restarted in its slot after a backoff: ``RestartPolicy.initial_backoff_s``, doubling with
  each death in a row, capped at ``max_backoff_s``, and forgotten once a worker has stayed
  up for ``stable_after_s``. The other workers keep serving meanwhile.
- A slot whose worker dies within ``start_window_s`` of starting ``max_start_failures``
  times in a row has a problem no restart fixes (the port is taken, Redis refuses us): the
  supervisor then stops every worker and exits 1, so the service manager (systemd, a
  container runtime) sees the failure instead of a silent restart loop.
- SIGTERM/SIGINT is forwarded once to every worker and ends the restarts. Each worker
  drains (stops accepting, lets in-flight requests finish within ``shutdown_grace_s``, gives
  its session leases back); one still running ``STOP_MARGIN_S`` after the grace is
  SIGKILLed. The exit status is 0 if every worker stopped cleanly, else 1.

Workers are started with the *spawn* method: a fresh interpreter, no inherited event loop,
Redis connections or threads. ``serve`` therefore travels by pickle and must be a
module-level function; it runs in each worker, configures logging itself and serves with
``reuse_port=True`` and a drain of ``shutdown_grace_s`` (see ``app.process.server``).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

import structlog

from app.process.settings import Settings
from app.transports.metrics import MULTIPROC_ENV

Serve = Callable[[Settings], None]

#: Beyond ``shutdown_grace_s``: the worker's cleanup after the drain (actors give their
#: leases back within 5 s, then Redis closes). A worker still alive after both is SIGKILLed.
STOP_MARGIN_S = 10.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT)
_CLEAN_EXITS = (0, -signal.SIGTERM, -signal.SIGINT)
_PR_SET_PDEATHSIG = 1

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class RestartPolicy:
    """When a worker that died on its own is started again, and when the supervisor gives up.

    ``start_window_s`` is wider than a spawned worker's start (interpreter, imports, Redis,
    bind: about a second, more on a loaded host), so a worker that cannot start always
    counts as failing at start.
    """

    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    stable_after_s: float = 10.0
    start_window_s: float = 3.0
    max_start_failures: int = 5

    def backoff_s(self, deaths_in_a_row: int) -> float:
        """The delay before the restart that follows the ``deaths_in_a_row``-th death."""
        exponent = min(max(deaths_in_a_row - 1, 0), 30)  # 2**30 * 0.1 s is cap enough
        return min(self.initial_backoff_s * 2.0**exponent, self.max_backoff_s)


DEFAULT_POLICY = RestartPolicy()


def run_workers(
    settings: Settings,
    serve: Serve,
    *,
    stop_timeout_s: float | None = None,
    policy: RestartPolicy = DEFAULT_POLICY,
) -> int:
    """Run ``serve(settings)`` in ``settings.workers`` processes; the exit status for main.

    With one worker ``serve`` runs in this process (nothing to supervise). Otherwise this
    blocks until SIGTERM/SIGINT (or a worker that cannot start) and every worker has
    exited: 0 after a stop with clean worker exits, 1 if a worker kept failing at start or
    did not stop cleanly. ``stop_timeout_s`` defaults to ``shutdown_grace_s`` plus
    ``STOP_MARGIN_S``. Call it from the main thread (signal handlers are installed here).
    """
    if settings.workers == 1:
        serve(settings)
        return 0
    if stop_timeout_s is None:
        stop_timeout_s = settings.shutdown_grace_s + STOP_MARGIN_S
    supervisor = _Supervisor(settings, serve, stop_timeout_s, policy)
    with _shared_metrics_dir(), supervisor.forwarding_signals():
        return supervisor.run()


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """A fresh directory the workers write their metrics to (prometheus-client multiprocess).

    Set before any worker is spawned, so each imports prometheus-client in that mode; removed
    when the supervisor exits, so a restart never adds up an earlier run's samples.
    """
    # prometheus-client's own switch, read by each worker at import: not a sessiond setting
    environ = os.environ  # noqa: TID251
    path = tempfile.mkdtemp(prefix="sessiond-metrics-")
    previous = environ.get(MULTIPROC_ENV)
    environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        if previous is None:
            environ.pop(MULTIPROC_ENV, None)
        else:
            environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def _forget_metrics_of(pid: int | None) -> None:
    """A dead worker's live gauges (actors) stop counting; its counters stay summed."""
    if pid is not None and os.environ.get(MULTIPROC_ENV):  # noqa: TID251 - see above
        from prometheus_client import multiprocess  # late: only the supervisor needs it here

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


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


@dataclass
class _Slot:
    """One of the ``settings.workers`` places: its current process and its death record."""

    name: str
    proc: BaseProcess | None = None
    started_at: float = 0.0
    #: Deaths since the last worker that stayed up ``stable_after_s``: drives the backoff.
    deaths: int = 0
    #: Deaths in a row within ``start_window_s`` of starting: a configuration error.
    start_failures: int = 0
    restart_at: float | None = None
    restarts: int = 0

    def record_death(self, uptime_s: float, policy: RestartPolicy) -> float:
        """Count a death after ``uptime_s``; the backoff before the next start."""
        if uptime_s >= policy.stable_after_s:
            self.deaths = 0
        self.deaths += 1
        self.start_failures = self.start_failures + 1 if uptime_s < policy.start_window_s else 0
        return policy.backoff_s(self.deaths)


class _Supervisor:
    """The parent's bookkeeping: the slots, whether a stop was requested, whom we told.

    Each worker is signalled at most once per stop: aiohttp keeps its SIGTERM handler
    during its graceful shutdown, and a second signal would abort that shutdown halfway.
    The signal handler also writes to a pipe the wait loop watches, so a stop is noticed
    at once even while no worker exits and no restart is due.
    """

    def __init__(
        self, settings: Settings, serve: Serve, stop_timeout_s: float, policy: RestartPolicy
    ) -> None:
        self.settings = settings
        self.serve = serve
        self.stop_timeout_s = stop_timeout_s
        self.policy = policy
        self.slots = [_Slot(f"sessiond-worker-{index}") for index in range(settings.workers)]
        self.signalled: set[int] = set()
        self.stopping = False
        self.gave_up = False
        self.stop_deadline = math.inf
        self._ctx = multiprocessing.get_context("spawn")
        self._wakeup: tuple[int, int] | None = None

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator[None]:
        """Install the forwarding handlers and their wake-up pipe for the lifetime; restore."""
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        self._wakeup = (read_fd, write_fd)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _FORWARDED}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._wakeup = None
            os.close(read_fd)
            os.close(write_fd)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """Graceful stop: pass the signal on once and wake the wait loop."""
        self.request_stop(signum)
        if self._wakeup is not None:
            with contextlib.suppress(BlockingIOError):  # already woken
                os.write(self._wakeup[1], b"\0")

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Mark the stop (no restarts from now on) and signal every worker not told yet."""
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + self.stop_timeout_s
        for slot in self.slots:
            proc = slot.proc
            if proc is None or proc.pid is None or proc.pid in self.signalled:
                continue
            if proc.exitcode is not None:
                continue
            self.signalled.add(proc.pid)
            with contextlib.suppress(ProcessLookupError):  # exited since the check
                os.kill(proc.pid, signum)

    def run(self) -> int:
        try:
            for slot in self.slots:
                if not self.stopping:
                    self._start(slot)
            log.info("workers started", workers=len(self.slots), pids=self._pids())
            self._supervise()
        finally:
            self.request_stop()  # no-op for workers already told; stops the rest
            unclean = self._join_all()
        return 1 if self.gave_up or unclean else 0

    def _pids(self) -> list[int | None]:
        return [slot.proc.pid for slot in self.slots if slot.proc is not None]

    def _start(self, slot: _Slot) -> None:
        proc = self._ctx.Process(
            target=_worker_main, args=(self.serve, self.settings, os.getpid()), name=slot.name
        )
        proc.start()
        slot.proc, slot.started_at, slot.restart_at = proc, time.monotonic(), None

    def _supervise(self) -> None:
        """Until a stop: restart what is due, wait for a death, a due restart or a signal."""
        assert self._wakeup is not None  # noqa: S101 - run inside forwarding_signals()
        while not self.stopping:
            self._start_due()
            by_sentinel = {s.proc.sentinel: s for s in self.slots if s.proc is not None}
            ready = wait([*by_sentinel, self._wakeup[0]], self._until_next_restart())
            for sentinel, slot in by_sentinel.items():
                if sentinel in ready and not self.stopping:
                    self._on_death(slot)

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.restart_at is None or slot.restart_at > now or self.stopping:
                continue
            self._start(slot)
            slot.restarts += 1
            log.info(
                "worker restarted",
                worker=slot.name,
                pid=slot.proc.pid if slot.proc is not None else None,
                restarts=slot.restarts,
            )

    def _until_next_restart(self) -> float | None:
        due = [slot.restart_at for slot in self.slots if slot.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _on_death(self, slot: _Slot) -> None:
        """A worker exited on its own: schedule its restart, or give up on a start failure."""
        proc = slot.proc
        assert proc is not None  # noqa: S101 - only running slots are waited for
        # The sentinel fires when the worker's fds close, a moment before it is reapable.
        proc.join()
        slot.proc = None  # before close(): the signal handler must not see a closed process
        pid, exitcode = proc.pid, proc.exitcode
        proc.close()
        _forget_metrics_of(pid)
        uptime_s = round(time.monotonic() - slot.started_at, 3)
        backoff_s = slot.record_death(uptime_s, self.policy)
        fields = {"worker": slot.name, "pid": pid, "exitcode": exitcode, "uptime_s": uptime_s}
        if slot.start_failures >= self.policy.max_start_failures:
            log.error(
                "worker keeps failing at start; stopping all workers",
                **fields,
                failures=slot.start_failures,
            )
            self.gave_up = True
            self.request_stop()
            return
        log.error("worker died; restarting it", **fields, backoff_s=backoff_s)
        slot.restart_at = time.monotonic() + backoff_s

    def _join_all(self) -> bool:
        """Wait for every worker up to the stop deadline, then SIGKILL; True if any failed."""
        procs = [slot.proc for slot in self.slots if slot.proc is not None]
        log.info("stopping workers", pids=[p.pid for p in procs], timeout_s=self.stop_timeout_s)
        for proc in procs:
            proc.join(max(0.0, self.stop_deadline - time.monotonic()))
            if proc.exitcode is None:
                log.error(
                    "worker did not stop in time; killing it",
                    worker=proc.name,
                    pid=proc.pid,
                    stop_timeout_s=self.stop_timeout_s,
                )
                proc.kill()
                proc.join()
        unclean = [proc for proc in procs if proc.exitcode not in _CLEAN_EXITS]
        for proc in unclean:
            log.error("worker exited uncleanly", worker=proc.name, exitcode=proc.exitcode)
        return bool(unclean)
