"""Redis memory per session when sessions are spread over many users.

``make bench`` stores every session on one user (so each index is one big sorted set); real
deployments spread sessions over many users, whose per-user indexes stay small. This script
creates ``--users`` users, then ``--per-user`` user-checked sessions each, through the HTTP API
of an in-process service on the given (kept, otherwise empty) Redis, and prints
``used_memory_dataset`` added per stored session. The server should carry the settings of
``deploy/redis.conf`` (``storage/server_config.py``); the script prints whether it does.

    .venv/bin/python bench/memory_spread.py --redis-url redis://127.0.0.1:6390/0
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
from typing import Any

import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from seeding import Api, bounded_map

from app.application import create_app
from app.process.bootstrap import bootstrap
from app.process.settings import Settings
from storage import keys, server_config


async def _stored(client: aioredis.Redis) -> tuple[int, int]:
    memory = await client.info("memory")
    return int(memory["used_memory_dataset"]), int(await client.zcard(keys.SESSIONS_BY_CREATION))


async def measure(redis_url: str, users: int, per_user: int) -> None:
    admin = secrets.token_urlsafe(32)
    settings = Settings(
        redis_url=redis_url,
        admin_token=admin,
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        log_level="warning",
    )
    await bootstrap(settings, dev_mode=False)
    client = aioredis.Redis.from_url(redis_url)
    config = await client.config_get(*server_config.MEMORY_SETTINGS)
    print(f"server settings: {config} (deploy/redis.conf: {server_config.MEMORY_SETTINGS})")
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    try:
        async with Api(str(server.make_url("")).rstrip("/"), admin) as api:
            tag = secrets.token_hex(3)
            ids = await bounded_map(
                users, lambda i: api.create_user(f"spread-{tag}-{i}", password=None)
            )
            before = await _stored(client)

            async def one_session(index: int) -> dict[str, Any]:
                body = {"checks": {"user": {"userId": ids[index % users]}}}
                return await api.call("POST", "/v2/sessions", body, expect=(201,))

            await bounded_map(users * per_user, one_session)
            after = await _stored(client)
    finally:
        await server.close()
        await client.aclose()
    added = after[1] - before[1]
    print(f"{added:,} sessions of {users:,} users: {(after[0] - before[0]) / added:,.0f} B/session")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", required=True, help="a kept Redis this script may fill")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-user", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(measure(args.redis_url, args.users, args.per_user))


if __name__ == "__main__":
    main()
