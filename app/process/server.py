"""One worker process: the whole application on the shared port, guarded against slow clients.

``serve`` lives here, not in ``__main__``, because worker processes are spawned and receive it
by pickle, which needs an importable module.

aiohttp bounds neither how long a client may take to send a request head nor its body, nor
how many connections one process holds: 200 slowloris connections (a header byte every few
seconds, or a body dribbled after its headers) were all held for as long as they liked. Each
connection's protocol (``_GuardedHandler``) therefore keeps two timers:

- the head timer runs while a request head is expected: from the connection's start, and
  from the first byte of each further request on a kept-alive connection, until the head is
  parsed; when it fires the client gets a 408 and the connection is closed. An idle
  kept-alive connection (no byte since the last response) is aiohttp's keep-alive timeout's
  business, as with ``web.run_app``, and so is the rare partial head that arrived in the
  same read as the end of the previous request (nothing tells its bytes apart there);
- the body timer runs from a parsed head until its body has fully arrived; when it fires the
  connection is closed, which cancels the handler waiting for the body.

Connections beyond ``http_max_connections`` in this worker get a 503 and are closed at
once, before anything is read, so the ones already open are still served.

Plugging in our protocol needs our own ``web.Server``, so ``serve`` does what ``web.run_app``
does with an ``AppRunner`` and a ``TCPSite`` itself: same signals (SIGTERM/SIGINT raise
``GracefulExit``), graceful shutdown within ``shutdown_grace_s``, keep-alive timeout,
``reuse_port``, no access log, handler cancellation, and the uvloop loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from typing import Any, cast

import structlog
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from app.process.logging import configure_logging
from app.process.settings import Settings
from app.transports import tracing

#: ``web.run_app``'s default; below the usual proxies' upstream keep-alive limits.
KEEPALIVE_TIMEOUT_S = 75.0
#: Cut connections are summed up in one warning at most this often, not one line each.
REPORT_INTERVAL_S = 10.0
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_TOO_MANY = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

log = structlog.get_logger("sessiond.http")


class ConnectionGuard:
    """One worker's limits and its count of open connections.

    The event loop is single threaded, so a plain counter is enough.
    """

    def __init__(self, *, header_timeout_s: float, body_timeout_s: float, max_connections: int):
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_connections = max_connections
        self.open = 0
        self._cut: dict[str, int] = {}
        self._reported = -REPORT_INTERVAL_S
        self._report_handle: asyncio.TimerHandle | None = None

    def cut(self, reason: str) -> None:
        """Count a refused or timed-out connection; one warning sums them up per interval."""
        self._cut[reason] = self._cut.get(reason, 0) + 1
        if self._report_handle is None:
            delay = max(0.0, self._reported + REPORT_INTERVAL_S - time.monotonic())
            self._report_handle = asyncio.get_running_loop().call_later(delay, self._report)

    def _report(self) -> None:
        self._report_handle = None
        self._reported = time.monotonic()
        counts, self._cut = self._cut, {}
        log.warning("slow or excess connections cut", open=self.open, **counts)


class _GuardedHandler(RequestHandler):
    """aiohttp's protocol plus the head and body timers and the connection cap."""

    __slots__ = ("_body", "_body_timer", "_counted", "_guard", "_head_timer")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._counted = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        #: The payload still arriving under the body timer.
        self._body: StreamReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard = self._guard
        if guard.open >= guard.max_connections:
            self._manager = None  # never registered: connection_lost has nothing to undo
            cast(asyncio.Transport, transport).write(_TOO_MANY)
            transport.close()
            guard.cut("over_limit")
            return
        guard.open += 1
        self._counted = True
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._counted:
            self._counted = False
            self._guard.open -= 1
        self._disarm_head()
        self._disarm_body()
        self._body = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._counted or self._upgraded or self._payload_parser is not None:
            super().data_received(data)
            return
        body = self._body
        if body is not None and body.is_eof():
            self._body = body = None
            self._disarm_body()
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # one or more heads complete (or rejected)
            self._disarm_head()
            self._disarm_body()
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._body = payload
                self._body_timer = self._loop.call_later(
                    self._guard.body_timeout_s, self._body_timed_out
                )
            else:
                self._body = None
        elif body is None:
            if data and self._head_timer is None:
                self._arm_head()  # bytes that are no body: a head has begun
        elif body.is_eof():
            self._body = None
            self._disarm_body()

    def _arm_head(self) -> None:
        self._head_timer = self._loop.call_later(self._guard.header_timeout_s, self._head_timed_out)

    def _disarm_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None:
            return
        if not self._request_in_progress:  # never into the middle of another response
            transport.write(_REQUEST_TIMEOUT)
        self._guard.cut("header_timeout")
        self.force_close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport is None:
            return
        self._guard.cut("body_timeout")
        # Cancel the handler before closing: between force_close and connection_lost its
        # next read would fail with RuntimeError("Connection closed."), an "unhandled error"
        # with a traceback; a cancelled handler is what a client's own disconnect gives.
        if self._task_handler is not None:
            self._task_handler.cancel()
        self.force_close()


class _GuardedServer(web.Server):
    """aiohttp's ``web.Server`` making ``_GuardedHandler`` protocols."""

    def __init__(self, guard: ConnectionGuard, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.guard = guard

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, self.guard, loop=self._loop, **self._kwargs)


class GuardedAppRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``_GuardedServer`` with the same arguments."""

    def __init__(self, app: web.Application, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard

    async def _make_server(self) -> web.Server:
        built = await super()._make_server()  # runs the startup hooks, collects handler args
        return _GuardedServer(
            self.guard,
            built.request_handler,
            request_factory=built.request_factory,
            handler_cancellation=built.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **built._kwargs,
        )


def guard_of(settings: Settings) -> ConnectionGuard:
    return ConnectionGuard(
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout_s=settings.http_body_timeout_s,
        max_connections=settings.http_max_connections,
    )


async def _run(app: web.Application, settings: Settings) -> None:
    """``web.run_app``'s ``_run_app`` for one TCP site: serve until cancelled or signalled."""
    runner = GuardedAppRunner(
        app,
        guard_of(settings),
        handle_signals=True,
        shutdown_timeout=settings.shutdown_grace_s,
        keepalive_timeout=KEEPALIVE_TIMEOUT_S,
        access_log=None,
        handler_cancellation=True,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.http_host, settings.http_port, reuse_port=settings.workers > 1
        )
        await site.start()
        await asyncio.Event().wait()  # until a signal or the loop's end cancels us
    finally:
        await runner.cleanup()


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; a failure (Redis unreachable at start) is a log line.

    Raises:
        SystemExit: with status 1 after logging what failed, instead of letting the spawned
            worker print a plain, unredacted traceback.
    """
    configure_logging(settings)
    if tracing.configure():
        log.info("tracing on: spans go to the OTLP endpoint")
    try:
        _serve(settings)
    except Exception:
        log.exception("worker failed")
        raise SystemExit(1) from None


def _serve(settings: Settings) -> None:
    _tune_gc()
    loop: asyncio.AbstractEventLoop
    if settings.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    from app.application import create_app

    app = create_app(settings)
    asyncio.set_event_loop(loop)
    main = loop.create_task(_run(app, settings))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():  # a signal: clean up the runner (the graceful shutdown)
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """What ``web.run_app`` does last: cancel leftover tasks and report their errors."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def _tune_gc() -> None:
    """Fewer, cheaper collections: start-up objects are frozen out of every future scan.

    A request allocates many short-lived objects; with the default thresholds the collector
    ran often and its full passes over the long-lived start-up objects stalled the loop for
    tens of milliseconds (p99 of create 27 -> 12.5 ms, get 17 -> 5.8 ms when tuned).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
