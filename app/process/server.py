"""One worker process: the whole application on the shared port.

``serve`` lives here, not in ``__main__``, because worker processes are spawned and receive it
by pickle, which needs an importable module.
"""

from __future__ import annotations

import asyncio
import gc

from aiohttp import web

from app.process.logging import configure_logging
from app.process.settings import Settings


def serve(settings: Settings) -> None:
    configure_logging(settings)
    _tune_gc()
    loop: asyncio.AbstractEventLoop | None = None
    if settings.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    from app.application import create_app

    web.run_app(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        reuse_port=settings.workers > 1,
        access_log=None,
        print=None,
        loop=loop,
        handler_cancellation=True,
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
