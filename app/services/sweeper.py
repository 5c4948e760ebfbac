"""Purges sessions once ``expirationDate + SESSIOND_EXPIRED_RETENTION`` has passed.

Every worker runs one; purging is idempotent (purge.lua re-checks), so running several is
safe and just shares the work. Key expiry (retention + a grace period) is the backstop. A
failed round (Redis down, loading, full) is logged in one line and retried next interval:
the sweeper must outlive any fault, or sessions would only ever leave by key expiry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from actors.errors import ServiceError
from actors.ports import Clock
from app.services.ports import SessionReads

log = structlog.get_logger("sessiond.sweeper")


async def sweep_once(store: SessionReads, clock: Clock) -> int:
    """Purge everything due now; how many sessions were purged."""
    total = 0
    while (purged := await store.purge_due(clock.now_ms())) > 0:
        total += purged
    return total


#: An eviction still pending after this long was left by a crashed worker: finish it.
EVICTION_REPAIR_AFTER_MS = 5_000


async def sweep_forever(
    store: SessionReads,
    clock: Clock,
    interval_s: float,
    end_pending_evictions: Callable[[int], Awaitable[int]] | None = None,
) -> None:
    """Purge what is due, and end the cap's evictions a crashed worker left unfinished."""
    while True:
        try:
            if end_pending_evictions is not None:
                await end_pending_evictions(clock.now_ms() - EVICTION_REPAIR_AFTER_MS)
            purged = await sweep_once(store, clock)
        except ServiceError as exc:
            log.warning("sweep skipped", error_id=exc.error_id)
        except Exception as exc:
            log.error("sweep failed", error=repr(exc)[:500])
        else:
            if purged:
                log.info("purged expired sessions", count=purged)
        await asyncio.sleep(interval_s)
