"""The wait for a lockout reservation, shared by password and second-factor checks.

A verification is admitted only while failed + reserved attempts stay below the limit
(``password_begin.lua``, ``otp_begin.lua``). When the reserved ones fill the budget, a
genuine concurrent login should not fail at once: their outcome decides whether this one
may run (a success frees the budget, failures lock the user). So a BUSY answer is retried
with a short, growing pause for up to ``busy_wait_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

#: How long a reservation outlives a crashed verifier; far above one verification.
ATTEMPT_TTL_MS = 60_000
#: How long a check waits for in-flight checks of the same user before it is 429 busy.
BUSY_WAIT_S = 2.0


class _Start(Protocol):
    @property
    def status(self) -> str: ...


S = TypeVar("S", bound=_Start)


async def reserve(attempt: Callable[[], Awaitable[S]], busy_wait_s: float) -> S:
    """``attempt()`` until it is not BUSY or ``busy_wait_s`` passed; its last answer."""
    pause_s, waited_s = 0.01, 0.0
    while True:
        start = await attempt()
        if start.status != "BUSY" or waited_s >= busy_wait_s:
            return start
        await asyncio.sleep(pause_s)
        waited_s += pause_s
        pause_s = min(pause_s * 2, 0.2)
