"""The composition root: the only place that names the Redis classes and wires everything.

``open_stores`` builds storage for one process; ``create_app`` builds the aiohttp application
of one worker: storage → actors → services → the transports (REST, Connect, PingOne's API)
behind one middleware stack. Every resource is created and closed in one ``cleanup_ctx``
generator, so start-up and shutdown happen in one readable place, in reverse order. No logic
lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web

from actors.activity import ActivityPolicy
from actors.actor import ActorConfig
from actors.execute import Deps
from actors.limits import Limits
from actors.registry import SessionRegistry
from app.delivery.channels import configured_channels
from app.idp.client import IdpClient
from app.process.settings import Settings
from app.services.administrators import InternalPermissionService
from app.services.auth import Authenticator
from app.services.catalog import Services
from app.services.clock import SystemClock
from app.services.hashing import PasswordHasher
from app.services.idp_configs import AdminIdpService, ManagementIdpService
from app.services.ids import SecretsMinter
from app.services.intents import IntentService
from app.services.messages import MessageComposer
from app.services.organizations import OrganizationService
from app.services.passwords import CheckRates, PasswordService
from app.services.pingone_sessions import PingOneSessionService
from app.services.relay_repair import repair_forever
from app.services.sealing import Keyring
from app.services.second_factors import SecondFactorService
from app.services.session_reads import SessionViews
from app.services.sessions import SessionService
from app.services.sweeper import sweep_forever
from app.services.user_passkeys import WebAuthnConfig
from app.services.user_views import UserViewCache
from app.services.users import UserService
from app.transports import tracing
from app.transports.appkeys import AUTHENTICATOR, SERVICES, STORAGE
from app.transports.client_ip import TRUSTED_PROXIES
from app.transports.connect import setup_connect_routes
from app.transports.health import setup_health_routes
from app.transports.idp_callback import setup_idp_callback_route
from app.transports.metrics import (
    LEASE_WAITS,
    LIVE_ACTORS,
    OUTBOX_PROBE,
    RECORD,
    setup_metrics_route,
)
from app.transports.middlewares import authenticate, error_body, request_log
from app.transports.openapi import setup_openapi_route
from app.transports.pingone import PINGONE, setup_pingone_routes
from app.transports.rest import setup_rest_routes
from storage.client import RedisClient, open_client
from storage.idps import RedisIdpStore
from storage.intents import RedisIntentStore
from storage.orgs import InstanceInfo
from storage.outbox import adopt_earlier_keys, outbox_depth
from storage.rate_limits import RedisRateLimiter
from storage.relay import REPAIR_INTERVAL_S
from storage.sessions import RedisSessionStore
from storage.users import RedisUserStore

#: The one clock and the one id/token source of the process.
CLOCK = SystemClock()
IDS = SecretsMinter()


@dataclass(frozen=True, slots=True)
class Stores:
    """Storage of one process: one auto-pipelined connection shared by both stores."""

    redis: RedisClient
    instance: InstanceInfo
    users: RedisUserStore
    sessions: RedisSessionStore
    intents: RedisIntentStore
    idps: RedisIdpStore

    async def close(self) -> None:
        await self.redis.close()


async def open_stores(settings: Settings) -> Stores:
    """Connect, ensure the instance and its default organization, build both stores."""
    redis = open_client(
        settings.redis_url,
        timeout_s=settings.redis_timeout_ms / 1000,
        circuit_failures=settings.redis_circuit_failures,
        circuit_open_s=settings.redis_circuit_open_ms / 1000,
        observe=RECORD.redis,
        trace=tracing.redis_span if tracing.enabled() else None,
        wait_replicas=settings.redis_wait_replicas,
        wait_timeout_ms=settings.redis_wait_timeout_ms,
    )
    try:
        await adopt_earlier_keys(redis)  # before anything queues a message
        instance = await RedisUserStore(redis, settings, clock=CLOCK, ids=IDS).bootstrap()
    except BaseException:
        await redis.close()
        raise
    users = RedisUserStore(redis, settings, instance_id=instance.id, clock=CLOCK, ids=IDS)
    sessions = RedisSessionStore(
        redis,
        instance_id=instance.id,
        retention_ms=settings.expired_retention_ms,
        partitions=settings.event_partitions,
        stream_maxlen=settings.event_stream_maxlen,
        lease_ttl_ms=settings.lease_ttl_ms,
        max_sessions_per_user=settings.max_sessions_per_user,
        observe_relay=RECORD.relay,
    )
    intents = RedisIntentStore(redis, settings, instance_id=instance.id, clock=CLOCK, ids=IDS)
    idps = RedisIdpStore(redis, settings, instance_id=instance.id, clock=CLOCK, ids=IDS)
    return Stores(
        redis=redis,
        instance=instance,
        users=users,
        sessions=sessions,
        intents=intents,
        idps=idps,
    )


def create_app(settings: Settings) -> web.Application:
    """The whole service for one worker process, talking to ``settings.redis_url``."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[request_log, error_body, authenticate],
    )
    app.cleanup_ctx.append(_services(settings))
    setup_health_routes(app)
    setup_openapi_route(app)
    setup_metrics_route(app, token=settings.metrics_token)
    setup_rest_routes(app, max_depth=settings.max_json_depth)
    setup_connect_routes(app, max_depth=settings.max_json_depth)
    setup_pingone_routes(app, public_url=settings.public_url)
    setup_idp_callback_route(app)
    app[TRUSTED_PROXIES] = settings.trusted_proxy_networks
    if settings.demo_login_enabled:
        from app.login import setup_login  # late: off by default outside dev mode

        setup_login(app, settings)
    return app


def _registry(
    settings: Settings,
    stores: Stores,
    passwords: PasswordService,
    second_factors: SecondFactorService,
    intents: IntentService,
) -> SessionRegistry:
    deps = Deps(
        passwords=passwords,
        clock=CLOCK,
        minter=IDS,
        second_factors=second_factors,
        intents=intents,
        limits=_limits(settings),
        activity=_activity(settings),
    )
    return SessionRegistry(
        stores.sessions,
        deps,
        ActorConfig(
            lease_ttl_ms=settings.lease_ttl_ms,
            lease_wait_ms=settings.lease_wait_ms,
            idle_s=settings.actor_idle_s,
            mailbox_size=settings.mailbox_size,
            on_lease_wait=LEASE_WAITS.inc,
        ),
        ask_timeout_s=settings.ask_timeout_s,
        new_session_id=IDS.new_id,
    )


async def _report_live_actors(registry: SessionRegistry, every_s: float = 1.0) -> None:
    """The live-actor gauge, refreshed once a second rather than on every request."""
    while True:
        LIVE_ACTORS.set(registry.live_actors)
        await asyncio.sleep(every_s)


def _activity(settings: Settings) -> ActivityPolicy:
    return ActivityPolicy(
        granularity_ms=settings.activity_granularity_ms,
        default_idle_timeout_ms=settings.default_idle_timeout_ms,
    )


def _keyring(settings: Settings) -> Keyring:
    if not settings.master_key:
        raise SystemExit("SESSIOND_MASTER_KEY is not set (see app.process.master_key)")
    return Keyring.from_text(settings.master_key, settings.master_key_old)


def _limits(settings: Settings) -> Limits:
    return Limits(
        metadata_keys=settings.max_metadata_keys,
        metadata_key_chars=settings.max_metadata_key_chars,
        metadata_value_bytes=settings.max_metadata_value_bytes,
        metadata_bytes=settings.max_metadata_bytes,
        header_names=settings.max_header_names,
        header_values=settings.max_header_values,
        header_value_bytes=settings.max_header_value_bytes,
    )


def _services(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def services(app: web.Application) -> AsyncIterator[None]:
        keyring = _keyring(settings)
        stores = await open_stores(settings)
        users = stores.users
        hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            threads=settings.hash_threads,
        )
        user_rate, ip_rate, caller_rate = settings.rates
        passwords = PasswordService(
            users,
            hasher,
            CLOCK,
            max_attempts=settings.lockout_max_password_attempts,
            limiter=RedisRateLimiter(stores.redis),
            rates=CheckRates(user=user_rate, ip=ip_rate, caller=caller_rate),
        )
        user_views = UserViewCache(users, settings.cache_ttl_ms)
        messages = MessageComposer(
            keyring, CLOCK, frozenset(configured_channels(settings, settings.dev_mode))
        )
        second_factors = SecondFactorService(
            users,
            keyring,
            CLOCK,
            passwords,
            messages,
            max_attempts=settings.lockout_max_otp_attempts,
            webauthn_origins=settings.webauthn_origin_list,
        )
        idp_client = IdpClient(timeout_s=settings.idp_timeout_s)
        intents = IntentService(
            stores.intents,
            stores.idps,
            users,
            idp_client,
            keyring,
            CLOCK,
            instance_id=stores.instance.id,
            public_url=settings.callback_base_url,
            lifetime_ms=settings.idp_intent_lifetime_ms,
        )
        registry = _registry(settings, stores, passwords, second_factors, intents)
        idp_args = (stores.idps, keyring, CLOCK, IDS, stores.users)
        app[SERVICES] = Services(
            sessions=SessionService(
                registry,
                stores.sessions,
                users,
                SessionViews(stores.sessions, user_views),
                CLOCK,
                instance_id=stores.instance.id,
                retention_ms=settings.expired_retention_ms,
            ),
            users=UserService(
                users,
                passwords,
                hasher,
                user_views,
                CLOCK,
                IDS,
                keyring=keyring,
                messages=messages,
                totp_issuer=settings.domain,
                webauthn=WebAuthnConfig(
                    origins=settings.webauthn_origin_list, rp_name=settings.webauthn_rp_name
                ),
                idps=stores.idps,
            ),
            organizations=OrganizationService(users, hasher, user_views, CLOCK, IDS),
            permissions=InternalPermissionService(users, hasher, user_views, CLOCK, IDS),
            intents=intents,
            admin_idps=AdminIdpService(*idp_args, instance_id=stores.instance.id),
            management_idps=ManagementIdpService(*idp_args, instance_id=stores.instance.id),
        )
        app[PINGONE] = PingOneSessionService(
            registry,
            stores.sessions,
            users,
            keyring,
            CLOCK,
            environment_id=stores.instance.id,
            policy=_activity(settings),
            listing_limit=settings.max_sessions_per_user,
        )
        app[AUTHENTICATOR] = Authenticator(
            passwords, stores.sessions, user_views, CLOCK, settings.cache_ttl_ms
        )
        app[STORAGE] = stores.sessions
        app[OUTBOX_PROBE] = lambda: outbox_depth(stores.redis)
        gauges = asyncio.create_task(_report_live_actors(registry), name="metrics-gauges")
        sweeper = asyncio.create_task(
            sweep_forever(
                stores.sessions,
                CLOCK,
                settings.sweep_interval_s,
                registry.end_pending_evictions,
            ),
            name="session-sweeper",
        )
        relay_repair = asyncio.create_task(
            repair_forever(stores.sessions, CLOCK, REPAIR_INTERVAL_S), name="relay-repair"
        )
        try:
            yield
        finally:
            await registry.close()
            for task in (sweeper, relay_repair, gauges):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            hasher.close()
            await idp_client.close()
            await stores.close()

    return services
