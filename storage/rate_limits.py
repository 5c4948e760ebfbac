"""Rate limits on credential checks: one GCRA step per subject, in Redis (rate_limit.lua).

Each subject (a user, a client IP, a caller) has its own key; the steps of one check are
sent in one round trip (one script call per key, so each stays in its own slot on a
cluster). The check is refused if any subject is over its rate; a subject that was admitted
in the same round trip keeps that step (the cost of not holding several keys in one script).
"""

from __future__ import annotations

from actors.limits import Rate
from storage import keys
from storage.errors import mapped_errors
from storage.multiplex import Arg, MultiplexedRedis
from storage.scripts import source


class RedisRateLimiter:
    def __init__(self, redis: MultiplexedRedis) -> None:
        self._redis = redis

    async def admit(self, subjects: list[tuple[str, str, Rate]]) -> int:
        """0 if every ``(kind, subject, rate)`` may check now, else ms until one may."""
        calls: list[tuple[list[str], list[Arg]]] = [
            ([keys.rate_limit(kind, subject)], [rate.interval_ms, rate.tolerance_ms])
            for kind, subject, rate in subjects
            if subject and rate.count > 0
        ]
        if not calls:
            return 0
        with mapped_errors():
            replies = await self._redis.eval_many(source("rate_limit"), calls)
        return max((int(wait) for admitted, wait in replies if not int(admitted)), default=0)
