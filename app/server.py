"""One worker process: the whole application on the shared port.

``serve`` lives here, not in ``__main__``, because worker processes are spawned and receive it
by pickle, which needs an importable module.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from app.logging import configure_logging
from app.settings import Settings


def serve(settings: Settings) -> None:
    configure_logging(settings)
    loop: asyncio.AbstractEventLoop | None = None
    if settings.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    from app.application import create_app

    web.run_app(
        create_app(settings, settings.redis_url),
        host=settings.http_host,
        port=settings.http_port,
        reuse_port=settings.workers > 1,
        access_log=None,
        print=None,
        loop=loop,
        handler_cancellation=True,
    )
