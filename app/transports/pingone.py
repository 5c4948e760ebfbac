"""The PingOne transport: ``/v1/environments/{envId}/...`` onto ``PingOneSessionService``.

Decodes bodies (numbers may come as numeric strings, as in PingOne's own examples), reads
the ``ST`` cookie, works out the links' base URL and the client's address, and encodes the
HAL responses. Errors get PingOne's shape in ``app.transports.middlewares``. The
environment is this instance: any other ``envId`` is a 404.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from actors.errors import NotFound
from app.services import pingone_wire as wire
from app.services.pingone_sessions import Edge, PingOneSessionService
from app.services.pingone_wire import InvalidField
from app.transports.client_ip import client_ip
from app.transports.http import MAX_DEPTH, caller, read_body, too_deep

PINGONE: web.AppKey[PingOneSessionService] = web.AppKey("PINGONE")
PUBLIC_URL: web.AppKey[str] = web.AppKey("PUBLIC_URL")
ENVIRONMENT = "/v1/environments/{envId}"
_HAL = "application/hal+json"
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(wire.SessionIn, strict=False)
_AT = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _hal(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(payload), status=status, content_type=_HAL)


def _no_content() -> web.Response:
    return web.Response(status=204)


def _service(request: web.Request) -> PingOneSessionService:
    return request.app[PINGONE]


def _edge(request: web.Request) -> Edge:
    """The environment (this instance, else 404), the links' base and the client address."""
    env_id = request.match_info["envId"]
    service = _service(request)
    if env_id != service.environment_id:
        raise NotFound("PINGONE-env", "Errors.Environment.NotFound")
    base = request.app.get(PUBLIC_URL) or f"{request.scheme}://{request.host}"
    return Edge(base_url=base, env_id=env_id, client_ip=client_ip(request))


def _target(message: str) -> str:
    at = _AT.search(message)
    missing = _MISSING.search(message)
    if missing is not None:
        prefix = at.group(1) + "." if at is not None and at.group(1) else ""
        return prefix + missing.group(1)
    return at.group(1) if at is not None else ""


async def _body(request: web.Request) -> wire.SessionIn:
    raw = await read_body(request)
    if too_deep(raw, MAX_DEPTH):
        raise InvalidField("", f"the body is nested deeper than {MAX_DEPTH} levels")
    try:
        return _DECODER.decode(raw or b"{}")
    except msgspec.ValidationError as exc:
        text = str(exc)
        target = _target(text)
        code = "REQUIRED_VALUE" if _MISSING.search(text) else "INVALID_VALUE"
        raise InvalidField(target, _AT.sub("", text), detail_code=code) from None
    except msgspec.DecodeError as exc:
        raise InvalidField("", f"the body is not a JSON object: {exc}") from None


def _st_token(request: web.Request) -> str:
    """The ``ST`` cookie; one that cannot be a token names no session (404)."""
    token = request.cookies.get("ST")
    if token is None:
        raise InvalidField("Cookie.ST", "the ST cookie is required", detail_code="REQUIRED_VALUE")
    if not wire.MIN_TOKEN_CHARS <= len(token) <= wire.MAX_TOKEN_CHARS:
        raise NotFound("QUERY-SFeaa", "Errors.Session.NotExisting")
    return token


async def create_session(request: web.Request) -> web.Response:
    edge = _edge(request)
    body = await _body(request)
    return _hal(await _service(request).create(caller(request), edge, body), status=201)


async def get_session(request: web.Request) -> web.Response:
    edge = _edge(request)
    session_id = request.match_info["sessionId"]
    return _hal(await _service(request).get(caller(request), edge, session_id))


async def get_me(request: web.Request) -> web.Response:
    edge = _edge(request)
    return _hal(await _service(request).get_me(caller(request), edge, _st_token(request)))


async def put_me(request: web.Request) -> web.Response:
    edge = _edge(request)
    token = _st_token(request)
    body = await _body(request)
    return _hal(await _service(request).put_me(caller(request), edge, token, body))


async def delete_me(request: web.Request) -> web.Response:
    _edge(request)
    await _service(request).delete_me(caller(request), _st_token(request))
    return _no_content()


async def logout_me(request: web.Request) -> web.Response:
    """``POST /sessions/me`` exists only as PingOne's sign-out, chosen by its content type."""
    _edge(request)
    if request.content_type != wire.LOGOUT_CONTENT_TYPE:
        raise web.HTTPUnsupportedMediaType(text=f"use Content-Type: {wire.LOGOUT_CONTENT_TYPE}")
    token = _st_token(request)
    await _service(request).logout_me(caller(request), token)
    return _no_content()


async def list_user_sessions(request: web.Request) -> web.Response:
    edge = _edge(request)
    user_id = request.match_info["userId"]
    return _hal(await _service(request).list_of_user(caller(request), edge, user_id))


async def get_user_session(request: web.Request) -> web.Response:
    edge = _edge(request)
    user_id, session_id = request.match_info["userId"], request.match_info["sessionId"]
    return _hal(await _service(request).get_of_user(caller(request), edge, user_id, session_id))


async def delete_user_session(request: web.Request) -> web.Response:
    _edge(request)
    user_id, session_id = request.match_info["userId"], request.match_info["sessionId"]
    await _service(request).delete_of_user(caller(request), user_id, session_id)
    return _no_content()


async def delete_user_sessions(request: web.Request) -> web.Response:
    """Beyond PingOne: sign the user out everywhere, or everywhere but ``?except=<id>``."""
    _edge(request)
    keep = request.query.get("except") or None
    await _service(request).delete_all_of_user(caller(request), request.match_info["userId"], keep)
    return _no_content()


#: (method, path under the environment, handler); ``/sessions/me`` before ``{sessionId}``.
ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/sessions", create_session),
    ("GET", "/sessions/me", get_me),
    ("PUT", "/sessions/me", put_me),
    ("DELETE", "/sessions/me", delete_me),
    ("POST", "/sessions/me", logout_me),
    ("GET", "/sessions/{sessionId}", get_session),
    ("GET", "/users/{userId}/sessions", list_user_sessions),
    ("DELETE", "/users/{userId}/sessions", delete_user_sessions),
    ("GET", "/users/{userId}/sessions/{sessionId}", get_user_session),
    ("DELETE", "/users/{userId}/sessions/{sessionId}", delete_user_session),
]


def setup_pingone_routes(app: web.Application, *, public_url: str = "") -> None:
    app[PUBLIC_URL] = public_url.rstrip("/")
    for method, path, handle in ROUTES:
        app.router.add_route(method, ENVIRONMENT + path, handle)
