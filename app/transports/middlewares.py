"""What both transports share around every request: the log line, auth and error bodies.

The error middleware is the only place exceptions become responses: ServiceErrors map to the
error body of the request's protocol (REST or Connect, see ``app.transports.errors``) via the
gRPC→HTTP table; aiohttp's own HTTP errors (unknown route, wrong method, body too large) get
the same body shapes; anything else is logged with its traceback and answered with a generic
500. Authentication runs after the error middleware, so its failures get the same treatment.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable

import msgspec
import structlog
from aiohttp import web
from structlog.contextvars import bind_contextvars, reset_contextvars

from actors.errors import ServiceError
from app.services.auth import invalid_token
from app.transports import errors, tracing
from app.transports.appkeys import AUTHENTICATOR
from app.transports.client_ip import client_ip
from app.transports.http import CALLER, respond
from app.transports.metrics import RECORD

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("sessiond.http")

#: No bearer needed: probes and the API document.
#: ``/idps/callback`` is where identity providers send the browser back: its ``state`` (an
#: unguessable intent id) and the provider's code are what it carries, not a bearer token.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics", "/idps/callback"})
#: The demo login page and its backend-for-frontend authenticate with their own cookie.
PUBLIC_PREFIX = "/login"
#: Connect paths are ``/<package>.<Service>/<Method>``; every package served is ``zitadel.*``.
CONNECT_PREFIX = "/zitadel."
#: PingOne's API (``/v1/environments/...``) answers in PingOne's error shape.
PINGONE_PREFIX = "/v1/"

#: aiohttp status → (gRPC code, message) for errors raised before a handler runs.
_ROUTING = {
    404: (5, "Not Found"),
    405: (12, "Method Not Allowed"),
    413: (3, "request body too large"),
    415: (12, "Unsupported Media Type"),
    400: (3, "bad request"),
}
#: The same for Connect, whose clients read a 404 as ``unimplemented`` anyway.
_CONNECT_ROUTING = {
    404: "unimplemented",
    405: "unimplemented",
    413: "resource_exhausted",
    415: "unimplemented",
    400: "invalid_argument",
}


def is_connect(request: web.Request) -> bool:
    return request.path.startswith(CONNECT_PREFIX)


def is_pingone(request: web.Request) -> bool:
    return request.path.startswith(PINGONE_PREFIX)


def _error_id() -> str:
    """PingOne's per-error id, to find the failure in the logs: a random UUID."""
    return str(uuid.uuid4())


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
        if tracing.enabled():
            with tracing.request_span(request.method, _route(request)) as span:
                response = await handler(request)
                tracing.end_request(span, response.status)
        else:
            response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        seconds = time.perf_counter() - started
        route = _route(request)
        RECORD.request(route, request.method, status, seconds)
        if _logs_requests():  # at the default "warning" level, skip building the line
            log.info(
                "request",
                method=request.method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
            )
        reset_contextvars(**bound)


def error_response(request: web.Request, exc: ServiceError) -> web.Response:
    RECORD.rejection(exc)
    if exc.code in (13, 2):
        log.error("internal error", error_id=exc.error_id, key=exc.key)
    if is_connect(request):
        response = respond(errors.connect_body(exc), status=exc.http_status)
    elif is_pingone(request):
        response = respond(errors.pingone_body(exc, _error_id()), status=errors.pingone_status(exc))
    else:
        response = respond(errors.rest_body(exc), status=exc.http_status)
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)  # whole seconds, >= 1
    return response


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    headers = {
        name: value for name, value in exc.headers.items() if name in ("Allow", "Accept-Post")
    }
    if is_connect(request):
        code = _CONNECT_ROUTING.get(exc.status, "unknown")
        text = f"no such method: {request.path}" if exc.status == 404 else exc.text
        body: dict[str, object] = {"code": code, "message": text or exc.reason}
    elif is_pingone(request):
        body = errors.pingone_routing_body(exc.status, _error_id(), exc.reason)
    else:
        number, message = _ROUTING.get(exc.status, (2, exc.reason))
        body = {"code": number, "message": message, "details": []}
    response = respond(body, status=exc.status)
    response.headers.update(headers)
    return response


@web.middleware
async def error_body(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as exc:
        return error_response(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception:
        log.exception("unhandled error", route=_route(request))
        if is_connect(request):
            return respond({"code": "internal", "message": "Internal error"}, status=500)
        if is_pingone(request):
            return respond(errors.pingone_body(ServiceError("", ""), _error_id()), status=500)
        return respond({"code": 13, "message": "Internal error", "details": []}, status=500)


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if not token or scheme.lower() != "bearer":
        raise invalid_token()
    return token


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every API request carries ``Authorization: Bearer <token>`` (see app.services.auth)."""
    path = request.path
    if path not in PUBLIC_PATHS and not (
        path.startswith(PUBLIC_PREFIX)
        and path[len(PUBLIC_PREFIX) : len(PUBLIC_PREFIX) + 1] in ("", "/")
    ):
        caller = await request.app[AUTHENTICATOR].authenticate(_bearer(request))
        request[CALLER] = msgspec.structs.replace(
            caller,
            client_ip=client_ip(request),
            context_org_id=request.headers.get("x-zitadel-orgid", "")[:200],
        )
    return await handler(request)
