"""The read-time user facts sessions show (names, password change), cached per process."""

from __future__ import annotations

from typing import Protocol

from actors.views import UserView
from app.services.ttlcache import TTLCache


class UserViewSource(Protocol):
    async def user_view(self, user_id: str) -> UserView | None: ...


class UserViewCache:
    def __init__(self, source: UserViewSource, ttl_ms: int) -> None:
        self._source = source
        self._cache: TTLCache[str, UserView | None] = TTLCache(ttl_ms)

    async def get(self, user_id: str) -> UserView | None:
        hit, view = self._cache.get(user_id)
        if hit:
            return view
        view = await self._source.user_view(user_id)
        self._cache.put(user_id, view)
        return view

    def invalidate(self, user_id: str) -> None:
        self._cache.invalidate(user_id)
