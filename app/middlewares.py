"""Cross-cutting request handling: request ids, the one log line per request, and errors.

The error middleware is the only place exceptions become responses: ServiceErrors map to
ZITADEL's ``{code, message, details}`` body via the gRPC→HTTP table; aiohttp's own HTTP
errors (unknown route, wrong method, body too large) get the same body shape; anything else
is logged with its traceback and answered with a generic 500.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from structlog.contextvars import bind_contextvars, reset_contextvars

from actors.errors import ServiceError
from app.http import respond

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("sessiond.http")

#: aiohttp status → (gRPC code, message) for errors raised before a handler runs.
_ROUTING = {
    404: (5, "Not Found"),
    405: (12, "Method Not Allowed"),
    413: (3, "request body too large"),
    400: (3, "bad request"),
}


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "-"


def _new_request_id() -> str:
    """16 hex digits; a correlation id, not a secret, so the fast PRNG will do."""
    return f"{random.getrandbits(64):016x}"


def _logs_requests() -> bool:
    """Whether the request line would be written; asked per request, logging may be reconfigured."""
    enabled = getattr(log, "is_enabled_for", None)
    return enabled is None or bool(enabled(logging.INFO))


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to the log context and write one line when the request ends."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or _new_request_id()
    started = time.perf_counter()
    status = 500
    # bind/reset rather than bound_contextvars(): that one copies the whole context twice
    bound = bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        if _logs_requests():  # at the default "warning" level, skip building the line
            log.info(
                "request",
                method=request.method,
                route=_route(request),
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
        reset_contextvars(**bound)


@web.middleware
async def error_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as exc:
        if exc.code in (13, 2):
            log.error("internal error", error_id=exc.error_id, key=exc.key)
        return respond(exc.body(), status=exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code, message = _ROUTING.get(exc.status, (2, exc.reason))
        return respond({"code": code, "message": message, "details": []}, status=exc.status)
    except Exception:
        log.exception("unhandled error", route=_route(request))
        return respond({"code": 13, "message": "Internal error", "details": []}, status=500)
