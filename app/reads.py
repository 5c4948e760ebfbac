"""The session read path shared by GetSession and ListSessions."""

from __future__ import annotations

import msgspec
from aiohttp import web

from actors.model import SessionState
from actors.queries import SessionSummary
from actors.views import is_fresh, render
from app.appkeys import SESSIONS, USER_VIEWS

_ENCODER = msgspec.json.Encoder()


async def current_view(app: web.Application, meta: SessionSummary) -> bytes:
    """The stored view, unless the user changed since it was rendered (then re-render)."""
    if not meta.user_id:
        return meta.wire
    user = await app[USER_VIEWS].get(meta.user_id)
    if user is None or is_fresh(meta.view_version, meta.password_ms, user):
        return meta.wire
    state: SessionState | None = await app[SESSIONS].read_state(meta.session_id)
    if state is None:
        return meta.wire
    return _ENCODER.encode(render(state, user))
