"""Liveness and readiness probes (no authentication).

Readiness answers 200 only when a write to Redis would succeed right now, and 503 within
about a second otherwise (Redis down, frozen, loading its AOF, out of memory, read-only), so
a load balancer stops routing here exactly while requests would fail.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from actors.errors import ServiceError
from app.transports.appkeys import STORAGE
from app.transports.http import respond

#: The probe's own bound, below any load balancer's probe timeout.
READY_TIMEOUT_S = 1.0


async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return respond({"status": "SERVING"})


async def readyz(request: web.Request) -> web.Response:
    """A write to Redis succeeds; a load balancer should stop routing here when it does not."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await request.app[STORAGE].ping()
    except TimeoutError:
        reason = "STORAGE-timeout"
    except ServiceError as exc:
        reason = exc.error_id
    else:
        return respond({"status": "SERVING"})
    response = respond({"status": "NOT_SERVING", "redis": reason}, status=503)
    response.headers["Retry-After"] = "1"
    return response


def setup_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
