"""The relay: applies a session commit's effects outside the session's own hash slot.

A session's write script (create/commit/purge.lua) touches only the session's slot: with the
state it records one *relay entry* (the events to publish, the index changes, the delivery
jobs) in ``sess:{S}:relay`` and registers the session in its slot's ``relay:{t}``. The writer
then applies the entry right away (``apply``), so on the happy path an index or the event
stream is current when the request is answered; the last step clears the entry and releases
the writer's lease, so the session's next commit cannot overtake this one's effects.

A writer that dies in between leaves the entry behind. It is applied by the session's next
commit (whose script reports the entries still recorded: they go first, oldest first), or
by the repair pass (``repair``) once it is ``CLAIM_MS`` old. Every step is idempotent; the
events are appended once (the repair marks the entry in the partition's slot and looks for
it in the stream).

On a single node the entry is applied by one script call; on a Redis Cluster the same script
runs once per slot the entry touches, the session's own slot (the clearing step) last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from functools import lru_cache
from typing import Any, Protocol, TypeVar

import msgspec
import structlog
from redis.exceptions import RedisError

from actors.errors import ServiceError
from storage import keys
from storage.cluster import slot_of
from storage.codec import IndexOp, as_bytes, as_text
from storage.errors import mapped_errors
from storage.scripts import source

T = TypeVar("T")

#: An entry older than this is taken as left by a crashed writer, and applied by the repair.
CLAIM_MS = 5_000
#: How often the repair pass looks (so an index lags a commit by at most about 7.5 s).
REPAIR_INTERVAL_S = 2.5
_REPAIR_BATCH = 200
log = structlog.get_logger("sessiond.relay")


class RelayEntry(msgspec.Struct, frozen=True, array_like=True):
    """One write's effects outside its aggregate's slot, as recorded beside its state.

    A session's commit records one (encoded here); a user's, org's, IdP's or intent's write
    records one in Lua (``_emit.lua``), with its events only.
    """

    #: the aggregate whose write this is (the events' aggregateId, their partition)
    session_id: str
    field: str
    at_ms: int
    #: ZITADEL event envelopes, field/value pairs each (empty for a purge)
    events: list[list[str]]
    ops: list[IndexOp]
    #: delivery jobs for the outbox stream, field/value pairs each
    jobs: list[list[str]]
    #: the writer's lease owner, released by the clearing step ("" = none)
    release_owner: str = ""
    #: where the entry is recorded when it is not a session's (``user:{U}:relay``)
    relay_key: str = ""

    @property
    def recorded_in(self) -> str:
        return self.relay_key or keys.session_relay(self.session_id)

    @property
    def member(self) -> str:
        """How ``relay:{t}`` names the aggregate (``keys.relay_hash`` reads it back)."""
        return self.relay_key or self.session_id


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(RelayEntry)


def encode(entry: RelayEntry) -> bytes:
    return _ENCODER.encode(entry)


def decode(raw: bytes) -> RelayEntry:
    return _DECODER.decode(raw)


class ScriptClient(Protocol):
    """What the relay needs of a connection (``MultiplexedRedis`` or ``ClusterRedis``)."""

    async def eval_script(self, source: str, keys: list[str], args: list[Any]) -> Any: ...

    async def eval_many(
        self, source: str, calls: list[tuple[list[str], list[Any]]]
    ) -> list[Any]: ...

    async def execute(self, *args: Any) -> Any: ...


class Relay:
    """Applies relay entries (the writer's pass and the repair) and finds stale ones."""

    def __init__(
        self,
        redis: ScriptClient,
        *,
        partitions: int,
        stream_maxlen: int,
        split_by_slot: bool,
        observe_lag: Callable[[str, float], None] | None = None,
    ) -> None:
        self._redis = redis
        #: told "writer" or "repair" and the seconds from the commit to its clearing
        self._observe_lag = observe_lag
        self._partitions = partitions
        self._maxlen = stream_maxlen
        self._split = split_by_slot

    def partition_key(self, session_id: str) -> str:
        return keys.event_stream(keys.event_partition(session_id, self._partitions))

    @property
    def split(self) -> bool:
        """Whether a write's pass is a call of its own (a cluster), not part of its write."""
        return self._split

    async def apply(
        self, entry: RelayEntry, *, repair: bool = False, raw: bytes | None = None
    ) -> list[str]:
        """Apply the entry and clear it; the sessions a cap op found over the limit.

        The writer's own pass (not ``repair``) also releases the writer's lease if asked; a
        repair never does: the lease may be a newer writer's by then, under the same owner.
        """
        blob = raw if raw is not None else encode(entry)
        if not self._split:
            whole = await self._run(entry, blob, repair, None, effects=True, ack=True)
            self._lag(entry, repair)
            return whole
        slots = {slot_of(key) for key in self._effect_keys(entry)}
        victims: list[str] = []
        each_slot = (self._call(entry, blob, repair, s, effects=True, ack=False) for s in slots)
        calls = [call for call in each_slot if call is not None]
        with mapped_errors():  # one write per node, not one routed call per slot
            replies = await self._redis.eval_many(source("relay_apply"), calls)
        for reply in replies:
            victims += victims_of(reply) or []
        if victims:  # recorded before the entry is cleared, so a crash cannot lose them
            pairs = (part for sid in victims for part in (entry.at_ms, sid))
            with mapped_errors():
                await self._redis.execute("ZADD", keys.SESSIONS_TO_EVICT, "NX", *pairs)
        own = slot_of(entry.recorded_in)
        await self._run(entry, blob, repair, own, effects=False, ack=True)
        self._lag(entry, repair)
        return victims

    def _lag(self, entry: RelayEntry, repair: bool) -> None:
        if self._observe_lag is not None:
            lag_ms = max(0, time.time_ns() // 1_000_000 - entry.at_ms)
            self._observe_lag("repair" if repair else "writer", lag_ms / 1000)

    def _effect_keys(self, entry: RelayEntry) -> Iterable[str]:
        if entry.events:
            yield self.partition_key(entry.session_id)
        for op in entry.ops:
            yield op.key
            if op.op == "cap":
                yield keys.SESSIONS_TO_EVICT
        if entry.jobs:
            yield keys.OUTBOX

    async def _run(
        self,
        entry: RelayEntry,
        blob: bytes,
        repair: bool,
        slot: int | None,
        *,
        effects: bool,
        ack: bool,
    ) -> list[str]:
        """One script call: the entry's effects in ``slot`` (None: all), then its clearing."""
        call = self._call(entry, blob, repair, slot, effects=effects, ack=ack)
        if call is None:
            return []
        with mapped_errors():
            reply = await self._redis.eval_script(source("relay_apply"), *call)
        return victims_of(reply) or []

    def writer_call(self, entry: RelayEntry, blob: bytes) -> tuple[list[str], list[Any]] | None:
        """The writer's whole pass as one call (one node only), to send with its commit."""
        if self._split:
            return None
        return self._call(entry, blob, False, None, effects=True, ack=True)

    def chained_call(
        self, aggregate_id: str, recorded_in: str, touches: Iterable[str], *, jobs: bool
    ) -> tuple[list[str], list[Any]] | None:
        """The writer's pass to send with a write whose entry is made in Lua (one node only).

        It applies the aggregate's only entry if that was made just now (relay_apply.lua);
        ``touches``: the keys the entry's ops may name, ``jobs``: whether it queues messages.
        """
        if self._split:
            return None
        stream = self.partition_key(aggregate_id)
        pending = keys.relay_pending(slot_of(recorded_in))
        outbox = keys.OUTBOX if jobs else ""
        touched = [stream, keys.replayed_entries(stream), recorded_in, pending, *touches]
        args: list[Any] = ["", "w", self._maxlen, "", stream, outbox, ""]
        args += [recorded_in, pending, "", "", recorded_in]
        return list(dict.fromkeys([*touched, *([outbox] if outbox else [])])), args

    def observe(self, entry: RelayEntry) -> None:
        """Count a writer's pass sent with its commit (``writer_call``) once it applied."""
        self._lag(entry, False)

    def _call(
        self,
        entry: RelayEntry,
        blob: bytes,
        repair: bool,
        slot: int | None,
        *,
        effects: bool,
        ack: bool,
    ) -> tuple[list[str], list[Any]] | None:

        def here(key: str) -> bool:
            return effects and (slot is None or slot_of(key) == slot)

        sid = entry.session_id
        touched = [key for op in entry.ops if here(op.key) for key in _op_keys(op)]
        stream = self.partition_key(sid) if entry.events else ""
        if stream and here(stream):
            touched += [stream, keys.replayed_entries(stream)]
        else:
            stream = ""
        outbox = keys.OUTBOX if entry.jobs and here(keys.OUTBOX) else ""
        evict = ""
        if slot is None and any(op.op == "cap" for op in entry.ops):
            evict = keys.SESSIONS_TO_EVICT
        clearing = ["", "", "", "", ""]
        if ack:
            releases = "" if repair else entry.release_owner
            clearing = [
                entry.recorded_in,
                keys.relay_pending(slot_of(entry.recorded_in)),
                keys.session_lease(sid) if releases else "",
                releases,
                entry.member,
            ]
            touched += [key for key in clearing[:3] if key]
        touched += [key for key in (outbox, evict) if key]
        if not touched:
            return None
        args: list[Any] = [
            blob,
            "r" if repair else "w",
            self._maxlen,
            time.time_ns() // 1_000_000 if repair else entry.at_ms,
            stream,
            outbox,
            evict,
            *clearing,
        ]
        return list(dict.fromkeys(touched)), args

    async def settle(self, entry: RelayEntry, blob: bytes, recorded: int) -> list[str] | None:
        """The writer's own pass after its write; None if it failed (the repair takes it).

        The write stands (stored, with its entry), so it is answered, not failed.
        ``recorded`` > 1: an earlier write's entry is still there (its writer died, or its
        relay failed); the entries are applied oldest first, so the events keep their order.
        """
        try:
            if recorded > 1:
                with mapped_errors():
                    found = await self._redis.execute("HGETALL", entry.recorded_in)
                return await self.apply_recorded(found, own=entry.field)
            return await self.apply(entry, raw=blob)
        except (ServiceError, RedisError) as exc:
            log.warning(
                "relay deferred to the repair",
                aggregate_id=entry.session_id,
                error=getattr(exc, "error_id", None) or type(exc).__name__,
            )
            return None

    async def apply_recorded(self, raw: Iterable[Any], own: str = "") -> list[str]:
        """Apply a session's recorded entries (HGETALL's flat reply), oldest commit first.

        ``own``: the field of the caller's own commit among them, applied as its writer's pass.
        """
        blobs = [as_bytes(value) or b"" for value in list(raw)[1::2]]
        entries = sorted(
            ((decode(b), b) for b in blobs), key=lambda e: (_seq(e[0].field), e[0].at_ms)
        )
        victims: list[str] = []
        for entry, blob in entries:
            victims += await self.apply(entry, repair=entry.field != own, raw=blob)
        return victims

    async def repair(self, now_ms: int) -> int:
        """Apply the entries older than ``CLAIM_MS``; how many sessions had some.

        One look per node: at every slot's ``relay:{t}`` it serves (a cluster), or all.
        """
        by_node = getattr(self._redis, "slots_by_primary", None)
        groups: list[Iterable[int]] = await by_node() if by_node else [range(keys.SLOTS)]
        repaired = 0
        for group in groups:
            pending_keys = _pending_keys(tuple(group))
            if not pending_keys:
                continue
            batch = "" if self._split else "batch"
            args = [now_ms - CLAIM_MS, _REPAIR_BATCH, batch, *pending_keys]
            with mapped_errors():
                found = await self._redis.eval_script(
                    source("relay_pending"), pending_keys[:1], args
                )
            for member in (as_text(m) for m in found):
                relay_hash = keys.relay_hash(member)
                with mapped_errors():
                    recorded = await self._redis.execute("HGETALL", relay_hash)
                if not recorded:  # applied meanwhile; a stray registration is dropped
                    with mapped_errors():
                        await self._redis.execute(
                            "ZREM", keys.relay_pending(slot_of(relay_hash)), member
                        )
                    continue
                await self.apply_recorded(recorded)
                repaired += 1
        return repaired


#: Writes finishing after their caller was cancelled (held so the loop does not drop them).
_FINISHING: set[asyncio.Future[Any]] = set()


async def to_the_end(write: Coroutine[Any, Any, T]) -> T:
    """Run a write and its relay pass to the end, even if the caller is cancelled.

    A request cancelled between its script and the pass (its client went away) would leave
    the entry to the repair, seconds late, although the write itself stands.
    """
    task = asyncio.ensure_future(write)
    _FINISHING.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)


def _finished(task: asyncio.Future[Any]) -> None:
    _FINISHING.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: a caller that left has nobody to raise it to


def _op_keys(op: IndexOp) -> tuple[str, ...]:
    """The keys one op touches: its own, and the index it is seeded from (same slot)."""
    return (op.key, op.source) if op.source else (op.key,)


@lru_cache(maxsize=8)
def _pending_keys(slots: tuple[int, ...]) -> list[str]:
    return [keys.relay_pending(slot) for slot in slots]


def victims_of(reply: Any) -> list[str] | None:
    """A relay_apply reply: the cap's victims, or None when the pass did not apply."""
    if not reply or int(reply[0]) != 1:
        return None
    return [as_text(member) for member in reply[1:]]


def _seq(field: str) -> int:
    """An entry's place: its commit's last sequence; the purge's entry comes last.

    A commit without events is named ``n+ms`` and goes right after the one named ``n``.
    """
    head = field.split("+", 1)[0]
    return int(head) * 2 + ("+" in field) if head.isdigit() else 1 << 62
