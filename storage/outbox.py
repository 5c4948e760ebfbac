"""The delivery outbox: jobs on a Redis stream, consumed by the ``delivery`` group.

A job is written (``job_fields``) by the same script as the change that needs it, so a code
is never issued without its message, nor a message queued for a change that did not happen.
Workers read it with XREADGROUP; what happens next is recorded only in Redis:

- **delivered**: the job is recorded as sent (``{sessiond:outbox}:sent:<id>``, SET NX) and
  the entry is acknowledged and deleted (XACK + XDEL) in one script (``outbox_delivered.lua``);
  the job's ``sent_event`` is appended to the aggregate's event partition afterwards, only by
  the call whose SET set the marker, so the event is published at most once however often,
  from however many entries or workers, the job was sent. Sent events carry no ``sequence``:
  bumping the session's ``seq`` would fence out its actor's next commit. Every outbox key
  shares the stream's slot (its name is their hash tag), so the scripts and MULTI blocks
  here run on a Redis Cluster too.
- **failed**: the entry stays pending in the group and its id goes into ``OUTBOX_RETRY``
  (a zset scored by when it is due). The worker whose ZREM removes it (one wins) claims it
  with XCLAIM and tries again. ``OUTBOX_ATTEMPTS`` counts attempts per entry id: each failed
  send, and each take-over after a crash. After the last attempt the job moves to
  ``OUTBOX_DEAD`` with its reason.
- **crashed**: an entry pending for ``min_idle_ms`` that is not waiting in ``OUTBOX_RETRY``
  belonged to a worker that died; XAUTOCLAIM hands it to a live one. A live worker ``hold``s
  an entry right before sending it (still its own? then its idle time starts again), so only
  a send that outlasts ``min_idle_ms`` could be taken over: workers refuse a ``min_idle_ms``
  not well above their send timeout.

Idempotency: a job's ``id`` is its idempotency key. Its marker is set (NX, one day)
in the acknowledging script of a successful send, and checked (``sent_among``, one MGET per
batch read) before every send, so an entry whose job was recorded as sent is acknowledged
without sending it again, nor publishing its event (a replayed script, a requeue). A worker
killed *during* a send or between the send and that script (the receiver may or may not have
the message) sends again after the take-over: the receiver dedupes on the key, which every
channel transmits.

The worker's hot path (``read``, ``sent_among``, ``delivered``) goes through auto-pipelining
connections (``storage.multiplex``): redis-py costs ~80 µs of CPU per command, which at a few
hundred messages a second was a good part of the worker's CPU. Blocking reads get a
connection of their own, so a read waiting for new jobs never holds up an acknowledgement.
The rare paths (retries, take-overs, dead letters, the ``outbox`` command) stay on redis-py.

A job entry is exactly the eight ``DeliveryJob`` fields, in declaration order, all present,
as text (``JOB_FIELDS``). A dead letter is those eight plus ``reason``, ``attempts``,
``failed_ms`` and ``entry`` (the id it had in the outbox).
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from redis.exceptions import ResponseError

from actors.delivery import DeliveryJob
from actors.timefmt import rfc3339_ms
from storage import keys
from storage.client import RedisClient, is_cluster_url
from storage.cluster import ClusterRedis
from storage.codec import as_text
from storage.connection import PyClient, connect_any
from storage.multiplex import Arg, MultiplexedRedis, as_dict
from storage.scripts import source

GROUP = "delivery"
#: The order of a job's fields on the stream (the Lua scripts write them in this order).
JOB_FIELDS = (
    "id",
    "channel",
    "template",
    "user_id",
    "created_ms",
    "sealed",
    "session_id",
    "sent_event",
)
SENT_MARKER_TTL_MS = 24 * 3600 * 1000
#: Bound of a blocking read on its own connection; a read blocks at most ``MAX_BLOCK_MS``.
READ_TIMEOUT_S = 10.0
MAX_BLOCK_MS = 5000
DEAD_MAXLEN = 100_000
#: ``pending_summary`` counts unread entries up to this many.
UNREAD_COUNT_CAP = 100_000
#: ``creator`` of the sent events: the worker, not a user, publishes them.
SENT_EVENT_CREATOR = "delivery"


class MalformedJobError(ValueError):
    """An outbox entry that is not a job (missing fields, wrong types)."""


def job_fields(job: DeliveryJob) -> list[str]:
    """The flat field/value list of XADD: ``JOB_FIELDS`` in order, every value as text."""
    values = msgspec.structs.asdict(job)
    out: list[str] = []
    for name in JOB_FIELDS:
        out += [name, str(values[name])]
    return out


def job_args(jobs: Sequence[DeliveryJob]) -> list[str | int]:
    """Jobs as the write scripts take them: njobs, then per job npairs and its pairs."""
    args: list[str | int] = [len(jobs)]
    for job in jobs:
        fields = job_fields(job)
        args += [len(fields) // 2, *fields]
    return args


def job_from_fields(fields: Mapping[str, str] | Mapping[bytes, bytes]) -> DeliveryJob:
    """A job from a stream entry's fields (bytes or text); MalformedJobError if it is none."""
    text = {as_text(name): as_text(value) for name, value in fields.items()}
    try:
        return msgspec.convert(
            {name: text[name] for name in JOB_FIELDS if name in text}, DeliveryJob, strict=False
        )
    except msgspec.ValidationError as exc:
        raise MalformedJobError(str(exc)) from None


class HeldEntry(Protocol):
    """What ``delivered`` and ``dead_letter`` need of an entry (``OutboxEntry`` or alike)."""

    @property
    def entry_id(self) -> str: ...

    @property
    def fields(self) -> Mapping[str, str]: ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One job as a worker holds it: its stream id, the job, its attempts so far."""

    entry_id: str
    fields: dict[str, str]
    attempts: int

    @property
    def job(self) -> DeliveryJob:
        return job_from_fields(self.fields)


@dataclass(frozen=True, slots=True)
class PendingJob:
    entry_id: str
    job_id: str
    template: str
    channel: str
    consumer: str
    idle_ms: int
    attempts: int
    #: When its next attempt is due (ms since the epoch); None while in flight.
    retry_at_ms: int | None


@dataclass(frozen=True, slots=True)
class PendingSummary:
    #: Entries not yet read by any worker.
    unread: int
    pending: list[PendingJob]


@dataclass(frozen=True, slots=True)
class DeadJob:
    dead_id: str
    job_id: str
    template: str
    channel: str
    attempts: int
    reason: str
    failed_ms: int


def _pairs(flat: Sequence[str]) -> dict[Any, Any]:
    """A flat field/value list as the mapping redis-py's XADD takes (order is kept)."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _fields(raw: Mapping[Any, Any] | None) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in (raw or {}).items()}


def _flat_fields(flat: Sequence[Any]) -> dict[str, str]:
    """A stream entry's fields as a raw RESP reply gives them: ``[k1, v1, k2, v2, ...]``."""
    return {as_text(k): as_text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


class RedisOutbox:
    """The outbox stream, its consumer group, retries, dead letters and sent markers."""

    def __init__(
        self,
        client: PyClient,
        commands: RedisClient,
        reads: RedisClient,
        *,
        partitions: int,
        event_maxlen: int,
        dead_maxlen: int = DEAD_MAXLEN,
    ) -> None:
        """``commands`` carries the hot path, ``reads`` only the blocking XREADGROUP."""
        self._client = client
        self._commands = commands
        self._reads = reads
        self._partitions = partitions
        self._event_maxlen = event_maxlen
        self._dead_maxlen = dead_maxlen
        self._instance_id = ""

    async def close(self) -> None:
        await self._reads.close()
        await self._commands.close()
        await self._client.aclose()

    async def ensure_group(self) -> None:
        """Create the ``delivery`` group (and the stream) from the first entry; idempotent.

        First an earlier version's keys move under the stream's hash tag.
        """
        await adopt_earlier_keys(self._commands)
        try:
            await self._client.xgroup_create(keys.OUTBOX, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def forget_consumer(self, consumer: str) -> None:
        """Drop a stopping consumer from the group unless it still holds jobs.

        Every worker process brings new consumer names; without this the group would grow
        forever. One that holds jobs stays, for XAUTOCLAIM to take them over.
        """
        pending: Any = await self._client.xpending_range(
            keys.OUTBOX, GROUP, "-", "+", 1, consumername=consumer
        )
        if not pending:
            await self._client.xgroup_delconsumer(keys.OUTBOX, GROUP, consumer)

    async def enqueue(self, job: DeliveryJob) -> str:
        """A plain XADD, as the scripts do it (tests, requeue)."""
        return await self._xadd(keys.OUTBOX, job_fields(job))

    async def _xadd(self, stream: str, flat: Sequence[str]) -> str:
        return as_text(await self._client.xadd(stream, _pairs(flat)))

    async def read(self, consumer: str, count: int, block_ms: int) -> list[OutboxEntry]:
        """Up to ``count`` new jobs for ``consumer`` (XREADGROUP >), waiting ``block_ms``."""
        reply: Any = await self._reads.execute(
            "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count,
            "BLOCK", min(block_ms, MAX_BLOCK_MS),
            "STREAMS", keys.OUTBOX, ">",
        )  # fmt: skip
        raw = [entry for _, entries in reply or [] for entry in entries]
        return [OutboxEntry(as_text(eid), _flat_fields(f), 0) for eid, f in raw if f is not None]

    async def reclaim(
        self,
        consumer: str,
        min_idle_ms: int,
        cursor: str = "0-0",
        count: int = 10,
        held: Container[str] = (),
    ) -> tuple[str, list[OutboxEntry]]:
        """Jobs of crashed workers (pending ``min_idle_ms``, not waiting for a retry).

        Each take-over counts as an attempt. Returns the XAUTOCLAIM cursor to go on from
        (``0-0`` once the whole pending list was scanned) and the entries now ours. Entries
        in ``held`` (the caller's own, still in flight) are claimed (harmless: they are the
        caller's) but neither counted nor returned.
        """
        reply: Any = await self._client.xautoclaim(
            keys.OUTBOX, GROUP, consumer, min_idle_time=min_idle_ms, start_id=cursor, count=count
        )
        next_cursor = as_text(reply[0])
        claimed = [(as_text(eid), f) for eid, f in reply[1] if f is not None]
        if not claimed:
            return next_cursor, []
        waiting = await self._client.zmscore(keys.OUTBOX_RETRY, [eid for eid, _ in claimed])
        entries = []
        for (entry_id, raw), retry_at in zip(claimed, waiting, strict=True):
            if retry_at is not None or entry_id in held:  # waiting for its backoff; in flight
                continue
            attempts = await self._client.hincrby(keys.OUTBOX_ATTEMPTS, entry_id, 1)
            entries.append(OutboxEntry(entry_id, _fields(raw), int(attempts)))
        return next_cursor, entries

    async def hold(self, consumer: str, entry_id: str) -> bool:
        """Whether the entry is still ``consumer``'s, right before its send.

        If it is, its idle time starts again (``outbox_hold.lua``), so the send is not taken
        over meanwhile; if not (taken over, or done), it must not be sent.
        """
        held = await self._commands.eval_script(
            source("outbox_hold"), [keys.OUTBOX], [GROUP, consumer, entry_id]
        )
        return bool(held)

    async def due_retries(self, consumer: str, now_ms: int, count: int) -> list[OutboxEntry]:
        """Failed jobs whose backoff is over, claimed for ``consumer`` (one worker each)."""
        due: Any = await self._client.zrangebyscore(
            keys.OUTBOX_RETRY, "-inf", now_ms, start=0, num=count
        )
        entries = []
        for raw_id in due:
            entry_id = as_text(raw_id)
            if not await self._client.zrem(keys.OUTBOX_RETRY, entry_id):
                continue  # another worker took it
            claimed: Any = await self._client.xclaim(keys.OUTBOX, GROUP, consumer, 0, [entry_id])
            attempts = await self.attempts(entry_id)
            entries += [
                OutboxEntry(as_text(eid), _fields(f), attempts)
                for eid, f in claimed
                if f is not None
            ]
        return entries

    async def attempts(self, entry_id: str) -> int:
        value = await self._client.hget(keys.OUTBOX_ATTEMPTS, entry_id)
        return int(value) if value else 0

    async def failed(self, entry_id: str) -> int:
        """Count a failed attempt; the attempts so far."""
        return int(await self._client.hincrby(keys.OUTBOX_ATTEMPTS, entry_id, 1))

    async def retry_later(self, entry_id: str, due_ms: int) -> None:
        """Leave the entry pending and try it again from ``due_ms`` on."""
        await self._client.zadd(keys.OUTBOX_RETRY, {entry_id: due_ms})

    async def was_sent(self, job_id: str) -> bool:
        return bool(await self._client.exists(keys.outbox_sent(job_id)))

    async def sent_among(self, job_ids: Sequence[str]) -> set[str]:
        """Those of ``job_ids`` already recorded as sent (one MGET)."""
        if not job_ids:
            return set()
        markers: Any = await self._commands.execute(
            "MGET", *(keys.outbox_sent(job_id) for job_id in job_ids)
        )
        return {job_id for job_id, marker in zip(job_ids, markers, strict=True) if marker}

    async def mark_sent(self, job_id: str) -> None:
        await self._client.set(keys.outbox_sent(job_id), "1", nx=True, px=SENT_MARKER_TTL_MS)

    async def ack(self, entry_id: str) -> None:
        """Done with the entry: acknowledge and delete it, forget its attempts."""
        async with self._client.pipeline(transaction=True) as pipe:
            tx: Any = pipe
            self._forget(tx, entry_id)
            await tx.execute()

    @staticmethod
    def _forget(tx: Any, entry_id: str) -> None:
        tx.xack(keys.OUTBOX, GROUP, entry_id)
        tx.xdel(keys.OUTBOX, entry_id)
        tx.hdel(keys.OUTBOX_ATTEMPTS, entry_id)
        tx.zrem(keys.OUTBOX_RETRY, entry_id)

    async def delivered(
        self, entry: HeldEntry, at_ms: int, job: DeliveryJob | None = None, *, sent: bool = True
    ) -> bool:
        """Ack the entry; with ``sent``, record the job as sent and publish its ``sent_event``.

        The acknowledging script (``outbox_delivered.lua``, in the outbox's slot) sets the
        job's marker; only the call whose SET NX set it publishes the event, so a job sent from
        two entries (or by two workers) publishes it once at most (a worker that dies right
        after the script leaves it unpublished: the message went out, its event is lost).
        ``sent=False`` for an entry whose job was recorded as sent before: only acknowledged.
        True if this call recorded the job as sent.
        """
        job = job or job_from_fields(entry.fields)
        marker = keys.outbox_sent(job.id)
        script_keys = [keys.OUTBOX, keys.OUTBOX_ATTEMPTS, keys.OUTBOX_RETRY, marker]
        args: list[Arg] = [GROUP, entry.entry_id, 1 if sent else 0, SENT_MARKER_TTL_MS]
        recorded = await self._commands.eval_script(source("outbox_delivered"), script_keys, args)
        if recorded and sent and job.sent_event:
            stream, flat = await self._sent_event(job, at_ms)
            await self._commands.execute(
                "XADD", stream, "MAXLEN", "~", self._event_maxlen, "*", *flat
            )
        return bool(recorded)

    async def _sent_event(self, job: DeliveryJob, at_ms: int) -> tuple[str, list[str]]:
        instance_id = await self._instance()
        if job.session_id:
            aggregate_type, aggregate_id, owner = "session", job.session_id, instance_id
        else:
            org = await self._commands.execute("HGET", keys.user(job.user_id), "org")
            aggregate_type, aggregate_id = "user", job.user_id
            owner = as_text(org) if org else instance_id
        stream = keys.event_stream(keys.event_partition(aggregate_id, self._partitions))
        return stream, [
            "type",
            job.sent_event,
            "resourceOwner",
            owner,
            "payload",
            "{}",
            "aggregateType",
            aggregate_type,
            "aggregateId",
            aggregate_id,
            "aggregateVersion",
            "v1",
            "instanceId",
            instance_id,
            "creator",
            SENT_EVENT_CREATOR,
            "createdAt",
            rfc3339_ms(at_ms),
        ]

    async def _instance(self) -> str:
        if not self._instance_id:
            value = await self._commands.execute("HGET", keys.INSTANCE, "id")
            self._instance_id = as_text(value) if value else ""
        return self._instance_id

    async def dead_letter(self, entry: HeldEntry, reason: str, at_ms: int) -> str:
        """Move the job to ``OUTBOX_DEAD`` with ``reason`` (no secrets in it), then ack."""
        attempts = await self.attempts(entry.entry_id)
        flat = [value for pair in entry.fields.items() for value in pair]
        flat += ["reason", reason, "attempts", str(attempts), "failed_ms", str(at_ms)]
        flat += ["entry", entry.entry_id]
        async with self._client.pipeline(transaction=True) as pipe:
            tx: Any = pipe
            tx.xadd(keys.OUTBOX_DEAD, _pairs(flat), maxlen=self._dead_maxlen, approximate=True)
            self._forget(tx, entry.entry_id)
            replies = await tx.execute()
        return as_text(replies[0])

    async def pending_summary(self, count: int = 100) -> PendingSummary:
        """Jobs read but not done (in flight or waiting for a retry), and unread ones."""
        await self.ensure_group()
        rows: Any = await self._client.xpending_range(keys.OUTBOX, GROUP, "-", "+", count)
        pending = []
        for row in rows:
            entry_id = as_text(row["message_id"])
            raw: Any = await self._client.xrange(keys.OUTBOX, entry_id, entry_id)
            fields = _fields(raw[0][1]) if raw else {}
            retry_at = await self._client.zscore(keys.OUTBOX_RETRY, entry_id)
            pending.append(
                PendingJob(
                    entry_id=entry_id,
                    job_id=fields.get("id", ""),
                    template=fields.get("template", ""),
                    channel=fields.get("channel", ""),
                    consumer=as_text(row["consumer"]),
                    idle_ms=int(row["time_since_delivered"]),
                    attempts=await self.attempts(entry_id),
                    retry_at_ms=int(retry_at) if retry_at is not None else None,
                )
            )
        return PendingSummary(unread=await self._unread(), pending=pending)

    async def _unread(self) -> int:
        """Entries after the group's last delivered one (XINFO's ``lag`` is unset after XDEL)."""
        groups: Any = await self._client.xinfo_groups(keys.OUTBOX)
        last = next(as_text(g["last-delivered-id"]) for g in groups if as_text(g["name"]) == GROUP)
        after: Any = await self._client.xrange(keys.OUTBOX, f"({last}", "+", UNREAD_COUNT_CAP)
        return len(after)

    async def dead_jobs(self, count: int = 1000) -> list[DeadJob]:
        raw: Any = await self._client.xrange(keys.OUTBOX_DEAD, "-", "+", count)
        out = []
        for dead_id, entry in raw:
            fields = _fields(entry)
            out.append(
                DeadJob(
                    dead_id=as_text(dead_id),
                    job_id=fields.get("id", ""),
                    template=fields.get("template", ""),
                    channel=fields.get("channel", ""),
                    attempts=int(fields.get("attempts") or 0),
                    reason=fields.get("reason", ""),
                    failed_ms=int(fields.get("failed_ms") or 0),
                )
            )
        return out

    async def requeue_dead(self, ids: Sequence[str] | None = None) -> list[str]:
        """Put dead jobs (by dead-letter id or job id; None = all) back; their new entry ids.

        A requeued job is a new entry with a fresh attempt count and the same job id, so
        the idempotency key (and the sent marker) still applies.
        """
        wanted = set(ids) if ids is not None else None
        raw: Any = await self._client.xrange(keys.OUTBOX_DEAD, "-", "+")
        requeued = []
        for dead_id_raw, entry in raw:
            dead_id, fields = as_text(dead_id_raw), _fields(entry)
            if wanted is not None and dead_id not in wanted and fields.get("id") not in wanted:
                continue
            flat = [value for name in JOB_FIELDS for value in (name, fields.get(name, ""))]
            async with self._client.pipeline(transaction=True) as pipe:
                tx: Any = pipe
                tx.xadd(keys.OUTBOX, _pairs(flat))
                tx.xdel(keys.OUTBOX_DEAD, dead_id)
                replies = await tx.execute()
            requeued.append(as_text(replies[0]))
        return requeued


def open_outbox(url: str, *, partitions: int, event_maxlen: int, pool_size: int = 8) -> RedisOutbox:
    """An outbox on its own clients: blocking reads must not hold up other commands."""
    plain = ClusterRedis if is_cluster_url(url) else MultiplexedRedis
    return RedisOutbox(
        connect_any(url, pool_size=pool_size),
        plain(url),
        plain(url, timeout_s=READ_TIMEOUT_S),
        partitions=partitions,
        event_maxlen=event_maxlen,
    )


async def adopt_earlier_keys(redis: RedisClient) -> None:
    """Move an earlier version's outbox keys (other slots) under the stream's hash tag.

    Run by every process at start, before it writes; a cluster has no earlier data.
    Sent markers are not moved (they live a day): a job sent but not acknowledged at the
    upgrade may go out once more, under the same idempotency key.
    """
    if getattr(redis, "splits_by_slot", False):
        return
    for earlier, now in keys.EARLIER_OUTBOX_KEYS.items():
        await redis.eval_script(source("outbox_adopt"), [earlier, now], [])


async def outbox_depth(redis: RedisClient) -> int:
    """Jobs not delivered yet: unread by the delivery group plus read and not acknowledged.

    Before any worker created the group, every entry of the stream is waiting.
    """
    try:
        groups = await redis.execute("XINFO", "GROUPS", keys.OUTBOX)
    except ResponseError:  # no stream yet: nothing was ever queued
        return 0
    for flat in groups:
        group = {as_text(k): v for k, v in as_dict(flat).items()}
        if as_text(group.get("name")) != GROUP:
            continue
        lag = group.get("lag")
        if lag is not None:  # unknown after some trims: then count the stream
            return int(group.get("pending") or 0) + int(lag)
        break
    return int(await redis.execute("XLEN", keys.OUTBOX))
