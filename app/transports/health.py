"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from aiohttp import web

from actors.errors import Unavailable
from app.transports.appkeys import STORAGE
from app.transports.http import respond


async def healthz(_request: web.Request) -> web.Response:
    """The process is up and serving HTTP."""
    return respond({"status": "SERVING"})


async def readyz(request: web.Request) -> web.Response:
    """Redis answers; a load balancer should stop routing here when it does not."""
    try:
        await request.app[STORAGE].ping()
    except Unavailable:
        return respond({"status": "NOT_SERVING", "redis": "unreachable"}, status=503)
    return respond({"status": "SERVING"})


def setup_health_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
