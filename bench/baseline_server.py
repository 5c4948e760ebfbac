"""Same-run baselines: the cheapest aiohttp handlers the service can be compared with.

``GET /bare``  msgspec-encoded JSON, no I/O.
``GET /redis`` one HGETALL through redis.asyncio (hiredis parser) on the Redis the service
               uses, the 8-field hash decoded and returned as JSON.
``GET /redis-pipelined`` the same HGETALL through the service's own auto-pipelining
               connection (storage.multiplex): what one round trip costs the service itself.

Run: ``python bench/baseline_server.py --port P --redis-url unix:///path/redis.sock``.
Several processes may share the port (SO_REUSEPORT), like the service's workers.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import msgspec
import redis.asyncio as aioredis
import uvloop
from aiohttp import web

from storage.multiplex import MultiplexedRedis, as_dict

#: The hash GET /redis reads; ``seed`` writes it (8 fields, like the measured ceiling).
BASELINE_KEY = "bench:baseline:hash"
BASELINE_FIELDS = {f"field{i}": f"value-{i}-{'x' * 16}" for i in range(8)}
#: Same pool bound as the service's client (storage.connection.POOL_SIZE).
POOL_SIZE = 64

REDIS_KEY: web.AppKey[aioredis.Redis] = web.AppKey("REDIS_KEY", aioredis.Redis)
FAST_KEY: web.AppKey[MultiplexedRedis] = web.AppKey("FAST_KEY", MultiplexedRedis)
_ENCODER = msgspec.json.Encoder()
_BARE_BODY = {"status": "ok", "service": "baseline", "values": [1, 2, 3]}


async def bare(_request: web.Request) -> web.Response:
    return web.Response(body=_ENCODER.encode(_BARE_BODY), content_type="application/json")


async def one_round_trip(request: web.Request) -> web.Response:
    fields = await request.app[REDIS_KEY].hgetall(BASELINE_KEY)
    doc = {_text(key): _text(value) for key, value in fields.items()}
    return web.Response(body=_ENCODER.encode(doc), content_type="application/json")


async def one_pipelined_round_trip(request: web.Request) -> web.Response:
    fields = as_dict(await request.app[FAST_KEY].execute("HGETALL", BASELINE_KEY))
    doc = {_text(key): _text(value) for key, value in fields.items()}
    return web.Response(body=_ENCODER.encode(doc), content_type="application/json")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def make_app(redis_url: str) -> web.Application:
    app = web.Application()

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url, max_connections=POOL_SIZE, timeout=10
        )
        client = aioredis.Redis(connection_pool=pool)
        app[REDIS_KEY] = client
        app[FAST_KEY] = MultiplexedRedis(redis_url)
        yield
        await client.aclose()
        await app[FAST_KEY].close()

    app.cleanup_ctx.append(redis_ctx)
    app.router.add_get("/bare", bare)
    app.router.add_get("/redis", one_round_trip)
    app.router.add_get("/redis-pipelined", one_pipelined_round_trip)
    return app


async def seed(redis_url: str) -> None:
    """Write the hash ``/redis`` reads (idempotent)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        for field, value in BASELINE_FIELDS.items():
            await client.hset(BASELINE_KEY, field, value)
    finally:
        await client.aclose()


async def serve(port: int, redis_url: str) -> None:
    await seed(redis_url)
    runner = web.AppRunner(make_app(redis_url), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.redis_url))


if __name__ == "__main__":
    main()
