"""Purges sessions once ``expirationDate + SESSIOND_EXPIRED_RETENTION`` has passed.

Every worker runs one; purging is idempotent (purge.lua re-checks), so running several is
safe and just shares the work. Key expiry (retention + a grace period) is the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from actors.errors import ServiceError
from actors.ports import Clock
from app.services.ports import SessionReads

log = structlog.get_logger("sessiond.sweeper")


async def sweep_forever(store: SessionReads, clock: Clock, interval_s: float) -> None:
    while True:
        with contextlib.suppress(ServiceError):
            while (purged := await store.purge_due(clock.now_ms())) > 0:
                log.info("purged expired sessions", count=purged)
        await asyncio.sleep(interval_s)
