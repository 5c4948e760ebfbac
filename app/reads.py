"""The session read path shared by GetSession and ListSessions."""

from __future__ import annotations

import msgspec
from aiohttp import web

from actors.model import SessionState
from actors.queries import SessionSummary
from actors.views import UserView, is_fresh, render
from app.appkeys import SESSIONS, USER_VIEWS

_ENCODER = msgspec.json.Encoder()
#: A session's client view as JSON: the stored raw slice, or freshly rendered bytes. Both
#: are bytes-like and join straight into a response body.
View = bytes | msgspec.Raw


async def current_view(app: web.Application, meta: SessionSummary) -> View:
    """The stored view, unless the user changed since it was rendered (then re-render)."""
    if not meta.user_id:
        return meta.wire
    user = await app[USER_VIEWS].get(meta.user_id)
    if user is None or is_fresh(meta.view_version, meta.password_ms, user):
        return meta.wire
    return await _rerendered(app, meta, user)


async def current_views(app: web.Application, metas: list[SessionSummary]) -> list[View]:
    """``current_view`` of each session, looking each user up once (a page is often one user)."""
    user_views = app[USER_VIEWS]
    users: dict[str, UserView | None] = {}
    out: list[View] = []
    for meta in metas:
        user_id = meta.user_id
        if not user_id:
            out.append(meta.wire)
            continue
        if user_id in users:
            user = users[user_id]
        else:
            user = users[user_id] = await user_views.get(user_id)
        if user is None or is_fresh(meta.view_version, meta.password_ms, user):
            out.append(meta.wire)
        else:
            out.append(await _rerendered(app, meta, user))
    return out


async def _rerendered(app: web.Application, meta: SessionSummary, user: UserView) -> View:
    state: SessionState | None = await app[SESSIONS].read_state(meta.session_id)
    if state is None:
        return meta.wire
    return _ENCODER.encode(render(state, user))
