"""The Connect transport (https://connectrpc.com/docs/protocol): unary RPCs, JSON codec.

``POST /<package>.<Service>/<Method>`` with ``Content-Type: application/json`` (a charset is
fine) and the request message as proto3 JSON; an empty body is ``{}``. The answer is always
200 with the response message; errors are Connect error bodies with Connect's status table
(``app.transports.errors``). ``Connect-Protocol-Version`` is optional (the official ZITADEL
SDKs do not send it) but must be ``1`` when given; ``Connect-Timeout-Ms`` bounds the call
(``deadline_exceeded``). Methods ZITADEL defines that are not built here answer
``unimplemented`` (501); an unknown service or method is 404. The same service methods as
the REST routes run behind it (``app.services.catalog``), with the same middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from actors.errors import DeadlineExceeded, Unimplemented, ValidationFailed
from app.services import catalog
from app.services.catalog import Rpc
from app.transports.appkeys import SERVICES
from app.transports.http import MAX_DEPTH, caller, decode, read_body, require_fields, respond

JSON = "application/json"
_MAX_TIMEOUT_DIGITS = 10

METHODS: dict[str, Rpc] = {rpc.path: rpc for rpc in catalog.RPCS}

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _check_protocol(request: web.Request) -> float | None:
    """POST, JSON, protocol version 1; returns the client's deadline in seconds, if any."""
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST"], text="use POST")
    # the exact header is the common case: the parsed form only for parameters or case
    if request.headers.get("Content-Type") != JSON and request.content_type != JSON:
        raise web.HTTPUnsupportedMediaType(
            text=f"content type {request.content_type!r} is not supported; use {JSON}",
            headers={"Accept-Post": JSON},
        )
    version = request.headers.get("Connect-Protocol-Version")
    if version is not None and version != "1":
        raise ValidationFailed(f"unsupported Connect-Protocol-Version {version!r}; use 1")
    timeout = request.headers.get("Connect-Timeout-Ms")
    if timeout is None:
        return None
    # ASCII digits only: str.isdigit() would also accept "²" and other scripts' digits
    if not (timeout.isascii() and timeout.isdigit()) or len(timeout) > _MAX_TIMEOUT_DIGITS:
        raise ValidationFailed(f"invalid Connect-Timeout-Ms {timeout!r}")
    return int(timeout) / 1000


def handler(rpc: Rpc, max_depth: int = MAX_DEPTH) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        deadline_s = _check_protocol(request)
        message: Any = decode(await read_body(request), rpc.request, max_depth)
        require_fields(message)
        service = request.app[SERVICES].instance(rpc.owner)
        call = rpc.impl(service, caller(request), message)
        if deadline_s is None:
            return respond(await call)
        try:
            async with asyncio.timeout(deadline_s):
                return respond(await call)
        except TimeoutError:
            raise DeadlineExceeded("CONNECT-deadline", "Errors.Request.Timeout") from None

    return handle


def _unimplemented(service: str, name: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        _check_protocol(request)
        raise Unimplemented(
            "CONNECT-notYet",
            "Errors.Method.NotSupported",
            extra={"method": f"{service}/{name}"},
        )

    return handle


def setup_connect_routes(app: web.Application, *, max_depth: int = MAX_DEPTH) -> None:
    for path, rpc in METHODS.items():
        app.router.add_route("*", path, handler(rpc, max_depth))
    for service, names in catalog.UNIMPLEMENTED.items():
        for name in names:
            app.router.add_route("*", f"/{service}/{name}", _unimplemented(service, name))
