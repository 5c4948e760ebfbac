"""The delivery loop: take a job, open its sealed message, send it, record the outcome.

Each ``DeliveryWorker`` is one consumer of the outbox group and handles one job at a time;
run several (``--concurrency``, more processes, more hosts) to send in parallel. A round
takes, in this order, a failed job whose backoff is over, a job a crashed worker left
pending, or a new job. Outcomes (see ``storage.outbox``): delivered → acknowledged with
its ``sent_event``; failed → retried after an exponential backoff with jitter; after
``max_attempts`` → dead-lettered with the reason. A job that was already sent (its worker
died before the acknowledgement) is acknowledged without sending it again.

Nothing secret is logged: jobs are named by id and template, failures by a reason the
channel made safe (``DeliveryFailedError``) or the exception's type.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec
import structlog

from actors.delivery import OUTBOX_PURPOSE, DeliveryJob, Message
from app.delivery.channels import Channel, DeliveryFailedError
from app.services.sealing import Keyring, SealError

log = structlog.get_logger(__name__)
_MESSAGE = msgspec.json.Decoder(Message)


class Entry(Protocol):
    """A job as the outbox hands it out."""

    @property
    def entry_id(self) -> str: ...

    @property
    def fields(self) -> Mapping[str, str]: ...

    @property
    def attempts(self) -> int: ...

    @property
    def job(self) -> DeliveryJob:
        """The job; ValueError if the entry is not one."""


class Outbox(Protocol):
    """What the worker needs of the outbox (``storage.outbox.RedisOutbox``)."""

    async def ensure_group(self) -> None: ...

    async def read(self, consumer: str, count: int, block_ms: int) -> Sequence[Entry]: ...

    async def reclaim(
        self, consumer: str, min_idle_ms: int, cursor: str = ..., count: int = ...
    ) -> tuple[str, Sequence[Entry]]: ...

    async def due_retries(self, consumer: str, now_ms: int, count: int) -> Sequence[Entry]: ...

    async def failed(self, entry_id: str) -> int: ...

    async def retry_later(self, entry_id: str, due_ms: int) -> None: ...

    async def was_sent(self, job_id: str) -> bool: ...

    async def mark_sent(self, job_id: str) -> None: ...

    async def delivered(self, entry: Entry, at_ms: int) -> None: ...

    async def dead_letter(self, entry: Entry, reason: str, at_ms: int) -> str: ...

    async def forget_consumer(self, consumer: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    consumer: str
    max_attempts: int = 8
    #: First retry after about this long; doubling per failed attempt, capped.
    backoff_ms: int = 2000
    max_backoff_ms: int = 15 * 60 * 1000
    #: A job pending this long without a retry scheduled belonged to a crashed worker.
    #: Longer than any send may take (the channels time out after 20 s).
    claim_idle_ms: int = 60_000
    #: How long a read waits for new jobs (and so how late a due retry or a stop may be).
    block_ms: int = 500
    #: Bound of one send, on top of the channel's own timeouts.
    send_timeout_s: float = 30.0
    #: After a failed round (Redis unreachable), wait this long before the next.
    error_pause_s: float = 1.0


def backoff_ms(attempts: int, base_ms: int, cap_ms: int) -> int:
    """The wait after the ``attempts``-th failure: base·2^(n-1), capped, then jittered (½ to 1)."""
    full = min(base_ms << min(max(attempts - 1, 0), 40), cap_ms)
    return full // 2 + secrets.randbelow(full // 2 + 1)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DeliveryWorker:
    def __init__(
        self,
        outbox: Outbox,
        keyring: Keyring,
        channels: Mapping[str, Channel],
        config: WorkerConfig,
        clock_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self._outbox = outbox
        self._keyring = keyring
        self._channels = channels
        self._config = config
        self._clock_ms = clock_ms
        self._cursor = "0-0"

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; a job in flight is finished first."""
        grouped = False
        while not stop.is_set():
            try:
                if not grouped:  # again after a failure: the stream may have been deleted
                    await self._outbox.ensure_group()
                    grouped = True
                await self.round()
            except Exception as exc:  # Redis away: keep trying, say so once per round
                grouped = False
                log.error("delivery round failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._config.error_pause_s)
        with contextlib.suppress(Exception):  # best effort: a stop must not hang on Redis
            await self._outbox.forget_consumer(self._config.consumer)

    async def round(self) -> int:
        """Take and handle at most one job; how many were handled."""
        config = self._config
        entries = await self._outbox.due_retries(config.consumer, self._clock_ms(), 1)
        if not entries:
            self._cursor, entries = await self._outbox.reclaim(
                config.consumer, config.claim_idle_ms, self._cursor, 1
            )
        if not entries:
            entries = await self._outbox.read(config.consumer, 1, config.block_ms)
        for entry in entries:
            await self.handle(entry)
        return len(entries)

    async def handle(self, entry: Entry) -> None:
        try:
            job = entry.job
        except ValueError:
            await self._dead(entry, None, "not a delivery job")
            return
        if await self._outbox.was_sent(job.id):  # sent, then the worker died before the ack
            await self._outbox.delivered(entry, self._clock_ms())
            log.info("message was delivered already", job=job.id, template=job.template)
            return
        if entry.attempts >= self._config.max_attempts:
            await self._dead(entry, job, "workers died while delivering it")
            return
        try:
            message = _MESSAGE.decode(self._keyring.open(OUTBOX_PURPOSE, job.sealed))
        except (SealError, msgspec.DecodeError):
            await self._dead(entry, job, "sealed message does not open")
            return
        reason = await self._send(job, message)
        if reason is None:
            await self._outbox.mark_sent(job.id)
            await self._outbox.delivered(entry, self._clock_ms())
            log.info(
                "message delivered",
                job=job.id,
                template=job.template,
                channel=job.channel,
                attempt=entry.attempts + 1,
            )
            return
        await self._failed(entry, job, reason)

    async def _send(self, job: DeliveryJob, message: Message) -> str | None:
        """None once delivered, else why not (safe to store and log)."""
        channel = self._channels.get(job.channel)
        if channel is None:
            return f"no {job.channel} channel configured"
        try:
            async with asyncio.timeout(self._config.send_timeout_s):
                await channel.send(job, message)
        except DeliveryFailedError as exc:
            return exc.reason
        except TimeoutError:
            return "timed out"
        except Exception as exc:  # an unexpected failure; its text may hold the recipient
            return f"failed: {type(exc).__name__}"
        return None

    async def _failed(self, entry: Entry, job: DeliveryJob, reason: str) -> None:
        attempts = await self._outbox.failed(entry.entry_id)
        if attempts >= self._config.max_attempts:
            await self._dead(entry, job, reason)
            return
        delay = backoff_ms(attempts, self._config.backoff_ms, self._config.max_backoff_ms)
        await self._outbox.retry_later(entry.entry_id, self._clock_ms() + delay)
        log.warning(
            "delivery failed; retrying later",
            job=job.id,
            template=job.template,
            reason=reason,
            attempts=attempts,
            retry_in_ms=delay,
        )

    async def _dead(self, entry: Entry, job: DeliveryJob | None, reason: str) -> None:
        dead_id = await self._outbox.dead_letter(entry, reason, self._clock_ms())
        log.error(
            "message dead-lettered",
            job=job.id if job else None,
            template=job.template if job else None,
            entry=entry.entry_id,
            dead_letter=dead_id,
            reason=reason,
        )
