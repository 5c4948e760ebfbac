"""Typed application state keys: the composition root puts each service here once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from app.clock import SystemClock
from app.settings import Settings

if TYPE_CHECKING:
    from actors.registry import SessionRegistry
    from app.credentials import PasswordService
    from app.hashing import PasswordHasher
    from app.userviews import UserViewCache
    from storage.sessions import RedisSessionStore
    from storage.users import InstanceInfo, RedisUserStore

SETTINGS = web.AppKey("SETTINGS", Settings)
CLOCK = web.AppKey("CLOCK", SystemClock)
INSTANCE: web.AppKey[InstanceInfo] = web.AppKey("INSTANCE")
SESSIONS: web.AppKey[RedisSessionStore] = web.AppKey("SESSIONS")
USERS: web.AppKey[RedisUserStore] = web.AppKey("USERS")
HASHER: web.AppKey[PasswordHasher] = web.AppKey("HASHER")
PASSWORDS: web.AppKey[PasswordService] = web.AppKey("PASSWORDS")
REGISTRY: web.AppKey[SessionRegistry] = web.AppKey("REGISTRY")
USER_VIEWS: web.AppKey[UserViewCache] = web.AppKey("USER_VIEWS")
