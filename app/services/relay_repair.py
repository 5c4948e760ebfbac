"""Finishes session commits whose writer died before the relay applied their effects.

A commit records its events and index changes beside the session's state (one hash slot);
its writer applies them right after. When the writer dies in between, this pass, running in
every worker, applies what is older than ``storage.relay.CLAIM_MS``: an index or the event
stream lags a committed session by at most that plus one interval. Applying is idempotent,
so workers that repair the same entry at once do no harm.
"""

from __future__ import annotations

import asyncio

import structlog

from actors.errors import ServiceError
from actors.ports import Clock
from app.services.ports import SessionReads

log = structlog.get_logger("sessiond.relay")


async def repair_forever(store: SessionReads, clock: Clock, interval_s: float) -> None:
    """One repair pass per interval; a failed pass is logged and retried at the next."""
    while True:
        try:
            repaired = await store.repair_relay(clock.now_ms())
        except ServiceError as exc:
            log.warning("relay repair skipped", error_id=exc.error_id)
        except Exception as exc:
            log.error("relay repair failed", error=repr(exc)[:500])
        else:
            if repaired:
                log.info("relayed commits of crashed writers", sessions=repaired)
        await asyncio.sleep(interval_s)
