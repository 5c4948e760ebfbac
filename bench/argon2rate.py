"""The raw argon2id verify rate: the ceiling of ``create (user+password)``.

The service verifies passwords in a thread pool off the event loop; the same work done here
with nothing else around (argon2-cffi ``PasswordHasher.verify`` in a pool of the same size)
is the rate that scenario is compared with. The parameters are read from the hash the
service stored for the benchmark user when it can be found, else the service's defaults.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec
import redis.asyncio as aioredis
from argon2 import PasswordHasher

_PARAMS = re.compile(rb"^\$argon2id\$v=\d+\$m=(\d+),t=(\d+),p=(\d+)\$")


class Argon2Params(msgspec.Struct, frozen=True, kw_only=True):
    time_cost: int = 2
    memory_kib: int = 19_456
    parallelism: int = 1
    #: Where the values came from: "stored hash" or "service defaults".
    source: str = "service defaults"


def params_of(encoded: bytes) -> Argon2Params | None:
    match = _PARAMS.match(encoded)
    if match is None:
        return None
    memory, time_cost, lanes = (int(g) for g in match.groups())
    return Argon2Params(
        time_cost=time_cost, memory_kib=memory, parallelism=lanes, source="stored hash"
    )


async def stored_params(redis_url: str, user_id: str, *, max_keys: int = 50) -> Argon2Params:
    """The parameters of the argon2id hash stored for ``user_id`` (read-only SCAN)."""
    client = aioredis.Redis.from_url(redis_url, socket_timeout=10)
    try:
        seen = 0
        async for key in client.scan_iter(match=f"*{user_id}*", count=1000):
            seen += 1
            if seen > max_keys:
                break
            if await client.type(key) != b"hash":
                continue
            for value in (await client.hgetall(key)).values():
                params = params_of(value) if isinstance(value, bytes) else None
                if params is not None:
                    return params
    finally:
        await client.aclose()
    return Argon2Params()


def verify_rate(
    params: Argon2Params, *, threads: int, duration_s: float, password: str
) -> tuple[float, int]:
    """Verifies per second of ``threads`` threads looping for ``duration_s``; and the count."""
    hasher = PasswordHasher(
        time_cost=params.time_cost, memory_cost=params.memory_kib, parallelism=params.parallelism
    )
    encoded = hasher.hash(password)
    hasher.verify(encoded, password)  # warm: first call allocates
    lock = threading.Lock()
    count = 0
    started = time.perf_counter()
    deadline = started + duration_s

    def loop() -> None:
        nonlocal count
        while time.perf_counter() < deadline:
            hasher.verify(encoded, password)
            with lock:
                count += 1

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(loop) for _ in range(threads)]:
            future.result(timeout=duration_s + 60)
    elapsed = time.perf_counter() - started
    return count / elapsed, count
