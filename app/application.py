"""The composition root: builds the aiohttp application and wires storage → actors → routes.

No logic lives here. Every resource is created and closed in one ``cleanup_ctx`` generator,
so start-up and shutdown happen in one readable place, in reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from actors.actor import ActorConfig
from actors.execute import Deps
from actors.registry import SessionRegistry
from app.appkeys import (
    CLOCK,
    HASHER,
    INSTANCE,
    PASSWORDS,
    REGISTRY,
    SESSIONS,
    SETTINGS,
    USER_VIEWS,
    USERS,
)
from app.auth import AUTHENTICATOR, Authenticator, authenticate
from app.clock import SystemClock
from app.credentials import PasswordService
from app.hashing import PasswordHasher
from app.health import setup_health_routes
from app.middlewares import error_body, request_log
from app.minting import SecretsMinter, new_id
from app.openapi import setup_openapi_route
from app.sessions_api import setup_session_routes
from app.settings import Settings
from app.sweeper import sweep_forever
from app.users_api import setup_user_routes
from app.userviews import UserViewCache
from storage.multiplex import MultiplexedRedis
from storage.sessions import RedisSessionStore
from storage.users import RedisUserStore


def create_app(settings: Settings, redis_url: str) -> web.Application:
    """The whole service for one worker process, talking to the Redis at ``redis_url``."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_log, error_body, authenticate],
    )
    app[SETTINGS] = settings
    app[CLOCK] = SystemClock()
    app.cleanup_ctx.append(_services(redis_url))
    setup_health_routes(app)
    setup_openapi_route(app)
    setup_session_routes(app)
    setup_user_routes(app)
    return app


def _services(redis_url: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def services(app: web.Application) -> AsyncIterator[None]:
        settings, clock = app[SETTINGS], app[CLOCK]
        fast = MultiplexedRedis(redis_url)
        instance = await RedisUserStore(fast, settings).bootstrap()
        users = RedisUserStore(fast, settings, instance_id=instance.id)
        hasher = PasswordHasher(settings)
        sessions = RedisSessionStore(
            fast,
            instance_id=instance.id,
            retention_ms=settings.expired_retention_ms,
            partitions=settings.event_partitions,
            session_stream_maxlen=settings.session_stream_maxlen,
            stream_maxlen=settings.event_stream_maxlen,
            lease_ttl_ms=settings.lease_ttl_ms,
        )
        passwords = PasswordService(users, hasher, settings, clock)
        user_views = UserViewCache(users, settings.cache_ttl_ms)
        registry = SessionRegistry(
            sessions,
            Deps(passwords=passwords, clock=clock, minter=SecretsMinter()),
            ActorConfig(
                lease_ttl_ms=settings.lease_ttl_ms,
                lease_wait_ms=settings.lease_wait_ms,
                idle_s=settings.actor_idle_s,
                mailbox_size=settings.mailbox_size,
            ),
            ask_timeout_s=settings.ask_timeout_s,
            new_session_id=new_id,
        )
        app[INSTANCE], app[USERS], app[HASHER], app[SESSIONS] = instance, users, hasher, sessions
        app[PASSWORDS], app[USER_VIEWS], app[REGISTRY] = passwords, user_views, registry
        app[AUTHENTICATOR] = Authenticator(
            passwords, sessions, user_views, clock, settings.cache_ttl_ms
        )
        sweeper = asyncio.create_task(
            sweep_forever(sessions, clock, settings.sweep_interval_s), name="session-sweeper"
        )
        try:
            yield
        finally:
            await registry.close()
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            hasher.close()
            await fast.close()

    return services
