"""The client views of sessions, as GetSession and ListSessions return them.

A session's view is stored pre-encoded with its summary row; it is spliced into responses as
it is, unless its user changed since it was rendered (names, state, password), then it is
rendered again from the state.
"""

from __future__ import annotations

import msgspec

from actors.queries import SessionSummary
from actors.views import UserView, is_fresh, render
from app.services.ports import SessionReads
from app.services.user_views import UserViewCache

_ENCODER = msgspec.json.Encoder()


class SessionViews:
    def __init__(self, reads: SessionReads, users: UserViewCache) -> None:
        self._reads = reads
        self._users = users

    async def current(self, meta: SessionSummary) -> msgspec.Raw:
        """The stored view, unless the user changed since it was rendered (then re-render)."""
        if not meta.user_id:
            return meta.wire
        user = await self._users.get(meta.user_id)
        if user is None or is_fresh(meta.view_version, meta.password_ms, user):
            return meta.wire
        return await self._rerendered(meta, user)

    async def current_all(self, metas: list[SessionSummary]) -> list[msgspec.Raw]:
        """``current`` of each session, looking each user up once (a page is often one user)."""
        users: dict[str, UserView | None] = {}
        out: list[msgspec.Raw] = []
        for meta in metas:
            user_id = meta.user_id
            if not user_id:
                out.append(meta.wire)
                continue
            if user_id in users:
                user = users[user_id]
            else:
                user = users[user_id] = await self._users.get(user_id)
            if user is None or is_fresh(meta.view_version, meta.password_ms, user):
                out.append(meta.wire)
            else:
                out.append(await self._rerendered(meta, user))
        return out

    async def _rerendered(self, meta: SessionSummary, user: UserView) -> msgspec.Raw:
        state = await self._reads.read_state(meta.session_id)
        if state is None:
            return meta.wire
        return msgspec.Raw(_ENCODER.encode(render(state, user)))
