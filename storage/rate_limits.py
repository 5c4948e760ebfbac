"""Rate limits on credential checks: a GCRA step per subject, in Redis.

Each subject (a user, a client IP, a caller) has its own key. On one Redis all steps of a
check run in one script (``rate_limit_all.lua``): admitted only if every subject is within
its rate, and a refused check changes nothing. Where the keys may live in different slots
(``per_key``, for Redis Cluster) each key gets its own script call (``rate_limit.lua``), all
in one round trip; a subject admitted in that round trip keeps its step even if another
refused the check (the cost of not holding several keys in one script).
"""

from __future__ import annotations

from functools import lru_cache

from actors.limits import Rate
from storage import keys
from storage.client import RedisClient
from storage.errors import mapped_errors
from storage.multiplex import Arg
from storage.scripts import source


@lru_cache(maxsize=64)
def _gcra_args(rate: Rate) -> tuple[Arg, Arg]:
    """The script arguments of a rate (a few distinct rates per process)."""
    return rate.interval_ms, rate.tolerance_ms


class RedisRateLimiter:
    def __init__(self, redis: RedisClient, *, per_key: bool = False) -> None:
        self._redis = redis
        #: a cluster client splits by slot: then always one call per key
        self._per_key = per_key or bool(getattr(redis, "splits_by_slot", False))

    async def admit(self, subjects: list[tuple[str, str, Rate]]) -> int:
        """0 if every ``(kind, subject, rate)`` may check now, else ms until one may."""
        calls: list[tuple[list[str], list[Arg]]] = [
            ([keys.rate_limit(kind, subject)], [*_gcra_args(rate)])
            for kind, subject, rate in subjects
            if subject and rate.count > 0
        ]
        if not calls:
            return 0
        with mapped_errors():
            if not self._per_key:
                admitted, wait = await self._redis.eval_script(
                    source("rate_limit_all"),
                    [key for (key,), _ in calls],
                    [value for _, pair in calls for value in pair],
                )
                return 0 if int(admitted) else int(wait)
            replies = await self._redis.eval_many(source("rate_limit"), calls)
        return max((int(wait) for admitted, wait in replies if not int(admitted)), default=0)
