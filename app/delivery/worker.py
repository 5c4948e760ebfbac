"""The delivery loop: take jobs, open their sealed messages, send them, record the outcome.

A ``DeliveryWorker`` is one consumer of the outbox group with up to ``concurrency`` sends in
flight; run more processes or hosts to send more in parallel. It takes only as many jobs as it
has free send slots, so a job never waits here for a slot while its idle time (which another
worker's XAUTOCLAIM goes by) runs, and it ``hold``s each entry right before the send: an entry
another worker took over meanwhile is left to it, and the send starts the idle time again.
``claim_idle_ms`` must be above two send timeouts plus ``CLAIM_MARGIN_MS`` (checked at start,
``WorkerConfig.claim_idle_problem``). It takes jobs in batches: due
retries (failed jobs whose backoff is over) and crashed workers' jobs (XAUTOCLAIM) at most
every ``poll_ms`` while new jobs keep coming, and after every read that found none; otherwise
new jobs, as many per XREADGROUP as it may send at once. Whether a batch's jobs were sent
already is one MGET. Outcomes (see ``storage.outbox``): delivered → recorded as sent and
acknowledged in one script, which publishes its ``sent_event`` only if it was not recorded as
sent before; failed → retried after an exponential
backoff with jitter; after ``max_attempts`` → dead-lettered with the reason. A job that was
already sent (it was queued again, or sent from another entry) is acknowledged without
sending it again or publishing its event.

Nothing secret is logged: jobs are named by id and template, failures by a reason the
channel made safe (``DeliveryFailedError``) or the exception's type.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec
import structlog

from actors.delivery import OUTBOX_PURPOSE, DeliveryJob, Message
from app.delivery.channels import Channel, DeliveryFailedError
from app.services.sealing import Keyring, SealError

log = structlog.get_logger(__name__)
_MESSAGE = msgspec.json.Decoder(Message)
#: ``claim_idle_ms`` is above two send timeouts plus this (Redis round trips, loop delays).
CLAIM_MARGIN_MS = 1000


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
        self,
        consumer: str,
        min_idle_ms: int,
        cursor: str = ...,
        count: int = ...,
        held: Container[str] = ...,
    ) -> tuple[str, Sequence[Entry]]: ...

    async def due_retries(self, consumer: str, now_ms: int, count: int) -> Sequence[Entry]: ...

    async def hold(self, consumer: str, entry_id: str) -> bool: ...

    async def failed(self, entry_id: str) -> int: ...

    async def retry_later(self, entry_id: str, due_ms: int) -> None: ...

    async def was_sent(self, job_id: str) -> bool: ...

    async def sent_among(self, job_ids: Sequence[str]) -> set[str]: ...

    async def delivered(
        self, entry: Entry, at_ms: int, job: DeliveryJob | None = ..., *, sent: bool = ...
    ) -> bool: ...

    async def dead_letter(self, entry: Entry, reason: str, at_ms: int) -> str: ...

    async def forget_consumer(self, consumer: str) -> None: ...


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    consumer: str
    #: Sends in flight at once; also how many jobs one read takes.
    concurrency: int = 1
    max_attempts: int = 8
    #: First retry after about this long; doubling per failed attempt, capped.
    backoff_ms: int = 2000
    max_backoff_ms: int = 15 * 60 * 1000
    #: A job pending this long without a retry scheduled belonged to a crashed worker.
    #: Above two ``send_timeout_s`` plus ``CLAIM_MARGIN_MS`` (``claim_idle_problem``).
    claim_idle_ms: int = 90_000
    #: How long a read waits for new jobs (and so how late a due retry or a stop may be).
    block_ms: int = 500
    #: Due retries and crashed workers' jobs are looked for at most this often while new
    #: jobs keep coming, and after every read that found none.
    poll_ms: int = 250
    #: Bound of one send, on top of the channel's own timeouts.
    send_timeout_s: float = 30.0
    #: After a failed round (Redis unreachable), wait this long before the next.
    error_pause_s: float = 1.0

    def claim_idle_problem(self) -> str | None:
        """Why ``claim_idle_ms`` is unsafe with ``send_timeout_s`` (None: it is not).

        A send holds its entry for up to ``send_timeout_s`` after ``hold`` started its idle
        time again; a take-over before that ends would send the job a second time and count
        an attempt that is none. Two send timeouts plus a margin leave room for Redis and a
        busy event loop.
        """
        least = 2 * self.send_timeout_s * 1000 + CLAIM_MARGIN_MS
        if self.claim_idle_ms > least:
            return None
        return (
            f"claim_idle_ms {self.claim_idle_ms} must be above {least:.0f}"
            f" (2 x send_timeout_s {self.send_timeout_s:g} s + {CLAIM_MARGIN_MS} ms): another"
            " worker would take over jobs still being sent, and send them twice"
        )


@dataclass(frozen=True, slots=True)
class Taken:
    """An entry this worker holds: its job (None if it is none), and whether it went out."""

    entry: Entry
    job: DeliveryJob | None
    sent: bool


def backoff_ms(attempts: int, base_ms: int, cap_ms: int) -> int:
    """The wait after the ``attempts``-th failure: base·2^(n-1), capped, then jittered (½ to 1)."""
    full = min(base_ms << min(max(attempts - 1, 0), 40), cap_ms)
    return full // 2 + secrets.randbelow(full // 2 + 1)


class _HandlingFailedError(Exception):
    """A job's handling failed (logged there): the worker pauses as after a failed round."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class DeliveryWorker:
    """One consumer of the outbox group with up to ``config.concurrency`` sends in flight."""

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
        self._next_poll_ms = 0  # due retries and take-overs: at once, then on the timer
        #: Entry ids taken and not finished: never taken over from ourselves.
        self._held: set[str] = set()
        #: Job id -> done, for the last entry of that job in flight here (see ``handle``).
        self._sending: dict[str, asyncio.Future[None]] = {}
        self._troubled = False

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; the jobs taken are finished first.

        At most ``concurrency`` sends in flight, and no job taken before a slot is free for
        it: each read takes as many jobs as there are free slots, and with none free the
        worker waits for a send to end before it reads again.
        """
        config = self._config
        limit = max(1, config.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        grouped = False
        while not stop.is_set():
            if len(tasks) >= limit:  # every slot busy: take nothing until a send ends
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                tasks -= done
                continue
            try:
                if self._troubled:  # a job's handling failed (logged there): pause too
                    raise _HandlingFailedError
                if not grouped:  # again after a failure: the stream may have been deleted
                    await self._outbox.ensure_group()
                    grouped = True
                batch = await self.take(limit - len(tasks), config.block_ms)
            except Exception as exc:  # Redis away: keep trying, say so once per round
                self._troubled, grouped = False, False
                if not isinstance(exc, _HandlingFailedError):
                    log.error("delivery round failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), config.error_pause_s)
                continue
            for taken in batch:  # taken is ours: handled even once stop is set
                task = asyncio.create_task(self._guarded(taken))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        with contextlib.suppress(Exception):  # best effort: a stop must not hang on Redis
            await self._outbox.forget_consumer(config.consumer)

    async def round(self) -> int:
        """Take one batch and handle it, its jobs concurrently; how many were taken."""
        batch = await self.take(max(1, self._config.concurrency), self._config.block_ms)
        results = await asyncio.gather(*(self.handle(t) for t in batch), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(batch)

    async def take(self, limit: int, block_ms: int) -> list[Taken]:
        """Up to ``limit`` jobs, each with whether it was sent already.

        Due retries and crashed workers' jobs when the timer says so, else new ones
        (waiting up to ``block_ms`` for one).
        """
        config = self._config
        entries: list[Entry] = []
        now = self._clock_ms()
        if now >= self._next_poll_ms:
            self._next_poll_ms = now + config.poll_ms
            entries += await self._outbox.due_retries(config.consumer, now, limit)
            if len(entries) < limit:
                self._cursor, claimed = await self._outbox.reclaim(
                    config.consumer,
                    config.claim_idle_ms,
                    self._cursor,
                    limit - len(entries),
                    self._held,
                )
                entries += claimed
        if not entries:
            entries += await self._outbox.read(config.consumer, limit, block_ms)
            if not entries:  # idle: the next round looks for retries and take-overs
                self._next_poll_ms = 0
        jobs: list[DeliveryJob | None] = []
        for entry in entries:
            try:
                jobs.append(entry.job)
            except ValueError:
                jobs.append(None)
        # a job recorded as sent (its worker died before the ack; a replayed script; a
        # requeue) is only acknowledged: checked here for the whole batch in one call
        sent = await self._outbox.sent_among([job.id for job in jobs if job is not None])
        self._held.update(entry.entry_id for entry in entries)
        return [
            Taken(entry, job, job is not None and job.id in sent)
            for entry, job in zip(entries, jobs, strict=True)
        ]

    async def _guarded(self, taken: Taken) -> None:
        try:
            await self.handle(taken)
        except Exception as exc:  # left pending: a take-over sends it later
            self._troubled = True
            log.error(
                "delivery failed",
                job=taken.job.id if taken.job else None,
                entry=taken.entry.entry_id,
                error=type(exc).__name__,
            )

    async def handle(self, taken: Taken) -> None:
        entry, job = taken.entry, taken.job
        try:
            if job is None:
                await self._dead(entry, None, "not a delivery job")
                return
            # The same job from two entries in flight here (a replayed script, a requeue):
            # the later one waits for the earlier's outcome and checks the marker again, so
            # it is not sent twice. (Across workers the marker check alone applies.)
            done = asyncio.get_running_loop().create_future()
            earlier = self._sending.get(job.id)
            self._sending[job.id] = done
            try:
                sent = taken.sent
                if earlier is not None:
                    await asyncio.shield(earlier)
                    sent = await self._outbox.was_sent(job.id)
                await self._handle_job(entry, job, sent)
            finally:
                done.set_result(None)
                if self._sending.get(job.id) is done:
                    del self._sending[job.id]
        finally:
            self._held.discard(entry.entry_id)

    async def _handle_job(self, entry: Entry, job: DeliveryJob, sent: bool) -> None:
        if sent:  # recorded as sent from another entry: acknowledged, nothing published
            await self._outbox.delivered(entry, self._clock_ms(), job, sent=False)
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
        # still ours? (a take-over while it waited for an earlier entry of its job would
        # have counted an attempt and sends it there) and its idle time starts again, so
        # the send below is not taken over (claim_idle_ms is above two send timeouts)
        if not await self._outbox.hold(self._config.consumer, entry.entry_id):
            log.warning("job taken over by another worker; not sent here", job=job.id)
            return
        reason = await self._send(job, message)
        if reason is None:
            # the sent marker is set in the acknowledging script: a crash before it means one
            # more send under the same idempotency key, as a crash during the send does
            recorded = await self._outbox.delivered(entry, self._clock_ms(), job)
            log.info(
                "message delivered",
                job=job.id,
                template=job.template,
                channel=job.channel,
                attempt=entry.attempts + 1,
                # False: another entry or worker had sent it meanwhile (its event is published)
                first=recorded,
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
