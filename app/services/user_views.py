"""The read-time user facts sessions show (names, password change), cached per process.

It is also where this worker learns that a user changed: ``invalidate`` drops the view and
tells every subscriber (the authenticator's cache of PAT callers), so a user deactivated,
locked or deleted here stops authenticating here at once; other workers within the TTL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from actors.views import UserView
from app.services.ttlcache import TTLCache


class UserViewSource(Protocol):
    async def user_view(self, user_id: str) -> UserView | None: ...


class UserViewCache:
    def __init__(self, source: UserViewSource, ttl_ms: int) -> None:
        self._source = source
        self._cache: TTLCache[str, UserView | None] = TTLCache(ttl_ms)
        self._subscribers: list[Callable[[str], None]] = []

    def subscribe(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(user_id)`` whenever this worker changed a user."""
        self._subscribers.append(on_change)

    async def get(self, user_id: str) -> UserView | None:
        hit, view = self._cache.get(user_id)
        if hit:
            return view
        view = await self._source.user_view(user_id)
        self._cache.put(user_id, view)
        return view

    def invalidate(self, user_id: str) -> None:
        self._cache.invalidate(user_id)
        for on_change in self._subscribers:
            on_change(user_id)
