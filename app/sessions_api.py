"""Session API v2 handlers: /v2/sessions (and the /v2beta, /v2alpha aliases).

Handlers are thin: decode → resolve the user of a user check → registry → encode. Reads go
straight to storage (no actor): they splice each session's pre-encoded view into the body.
"""

from __future__ import annotations

from aiohttp import web

from actors import tokens
from actors.commands import DeleteSession, UserCheck
from actors.errors import NotFound, PermissionDenied, ValidationFailed, permission_denied
from actors.execute import Outcome
from actors.machine import session_not_found
from actors.model import UserRef
from actors.queries import retained, visible
from actors.timefmt import rfc3339_ms
from app import wire
from app.appkeys import CLOCK, INSTANCE, REGISTRY, SESSIONS, SETTINGS, USERS
from app.http import caller, decode_body, respond, respond_raw
from app.openapi import operation
from app.reads import current_view
from app.search import list_sessions

PREFIXES = ("/v2", "/v2beta", "/v2alpha")

operation(
    "POST",
    "/v2/sessions",
    "CreateSession",
    request=wire.CreateSessionRequest,
    response=wire.CreateSessionResponse,
    status=201,
)
operation(
    "POST",
    "/v2/sessions/search",
    "ListSessions",
    request=wire.ListSessionsRequest,
    response=wire.ListSessionsResponse,
)
operation(
    "GET",
    "/v2/sessions/{sessionId}",
    "GetSession",
    response=wire.GetSessionResponse,
    query=("sessionToken",),
)
operation(
    "PATCH",
    "/v2/sessions/{sessionId}",
    "SetSession",
    request=wire.SetSessionRequest,
    response=wire.SetSessionResponse,
)
operation(
    "DELETE",
    "/v2/sessions/{sessionId}",
    "DeleteSession",
    request=wire.DeleteSessionRequest,
    response=wire.DeleteSessionResponse,
    query=("sessionToken",),
)


def setup_session_routes(app: web.Application) -> None:
    for prefix in PREFIXES:
        app.router.add_post(f"{prefix}/sessions", create_session)
        app.router.add_post(f"{prefix}/sessions/search", list_sessions)
        app.router.add_get(f"{prefix}/sessions/{{sessionId}}", get_session)
        app.router.add_patch(f"{prefix}/sessions/{{sessionId}}", set_session)
        app.router.add_delete(f"{prefix}/sessions/{{sessionId}}", delete_session)


def _session_id(request: web.Request) -> str:
    session_id = request.match_info["sessionId"]
    if not 1 <= len(session_id) <= 200:
        raise ValidationFailed(
            "invalid request: value length must be between 1 and 200 runes,"
            " inclusive - at `sessionId`"
        )
    return session_id


async def _resolve_user(request: web.Request, check: UserCheck | None) -> UserRef | None:
    """Spec §4.1: by id exactly, by login name case-insensitively; unknown → 404."""
    if check is None:
        return None
    users = request.app[USERS]
    user: UserRef | None
    if check.user_id is not None:
        user = await users.user_ref_by_id(check.user_id)
    else:
        user = await users.user_ref_by_login_name(check.login_name or "")
    if user is None:
        raise NotFound("QUERY-Dfbg2", "Errors.User.NotFound")
    return user


def _details(request: web.Request, outcome: Outcome) -> wire.Details:
    state = outcome.state
    owner = request.app[INSTANCE].id
    if state is None:
        return wire.Details(resource_owner=owner)
    return wire.Details(
        sequence=str(state.sequence), change_date=rfc3339_ms(state.change_ms), resource_owner=owner
    )


async def create_session(request: web.Request) -> web.Response:
    command = wire.to_create(await decode_body(request, wire.CreateSessionRequest))
    user = await _resolve_user(request, command.checks.user)
    outcome = await request.app[REGISTRY].create(command, user=user, caller=caller(request))
    assert outcome.state is not None  # noqa: S101 - a create always produces a state
    assert outcome.token is not None  # noqa: S101 - ... and a token
    body = wire.CreateSessionResponse(
        details=_details(request, outcome), session_id=outcome.state.id, session_token=outcome.token
    )
    return respond(body, status=201)


async def set_session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    command = wire.to_set(await decode_body(request, wire.SetSessionRequest))
    user = await _resolve_user(request, command.checks.user)
    outcome = await request.app[REGISTRY].ask(
        session_id, command, user=user, caller=caller(request)
    )
    return respond(
        wire.SetSessionResponse(details=_details(request, outcome), session_token=outcome.token)
    )


async def delete_session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    body = await decode_body(request, wire.DeleteSessionRequest)
    token = body.session_token or _query_token(request)
    outcome = await request.app[REGISTRY].ask(
        session_id, DeleteSession(session_token=token), user=None, caller=caller(request)
    )
    return respond(wire.DeleteSessionResponse(details=_details(request, outcome)))


def _query_token(request: web.Request) -> str | None:
    token = request.query.get("sessionToken") or request.query.get("session_token")
    if token is not None and not 1 <= len(token) <= 400:
        raise ValidationFailed(
            "invalid GetSessionRequest.SessionToken: value length must be "
            "between 1 and 200 runes, inclusive"
        )
    return token


async def get_session(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    token = _query_token(request)
    app = request.app
    meta, token_hash = await app[SESSIONS].read_meta(session_id)
    if meta is None or meta.terminated:
        raise session_not_found()
    # without an expiration it is always retained: no clock, no parsing the retention setting
    if meta.expiration_ms is not None and not retained(
        meta, app[CLOCK].now_ms(), app[SETTINGS].expired_retention_ms
    ):
        raise session_not_found()
    if token is not None:
        if not tokens.verify(
            token, prefix=tokens.SESSION_PREFIX, owner_id=session_id, stored_hash=token_hash
        ):
            raise PermissionDenied("QUERY-dsfr3", "Errors.PermissionDenied")
    elif not visible(meta, caller(request)):
        raise permission_denied()
    view = await current_view(app, meta)
    return respond_raw(b"".join((b'{"session":', view, b"}")))
