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
from collections.abc import Iterable
from typing import Any, Protocol

import msgspec

from storage import keys
from storage.codec import IndexOp, as_bytes, as_text
from storage.errors import mapped_errors
from storage.scripts import source

#: An entry older than this is taken as left by a crashed writer, and applied by the repair.
CLAIM_MS = 5_000
#: How often the repair pass looks (so an index lags a commit by at most about 7.5 s).
REPAIR_INTERVAL_S = 2.5
_REPAIR_BATCH = 200


class RelayEntry(msgspec.Struct, frozen=True, array_like=True):
    """One commit's effects outside the session's slot, as recorded beside its state."""

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

    @property
    def first_sequence(self) -> str:
        for pairs in self.events:
            for name, value in zip(pairs[::2], pairs[1::2], strict=True):
                if name == "sequence":
                    return value
        return ""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(RelayEntry)


def encode(entry: RelayEntry) -> bytes:
    return _ENCODER.encode(entry)


def decode(raw: bytes) -> RelayEntry:
    return _DECODER.decode(raw)


class ScriptClient(Protocol):
    """What the relay needs of a connection (``MultiplexedRedis`` or ``ClusterRedis``)."""

    async def eval_script(self, source: str, keys: list[str], args: list[Any]) -> Any: ...

    async def execute(self, *args: Any) -> Any: ...


class _Call:
    """One script call's keys: numbered in the order first named."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._numbers: dict[str, int] = {}

    def number(self, key: str) -> int:
        found = self._numbers.get(key)
        if found is None:
            self.keys.append(key)
            found = self._numbers[key] = len(self.keys)
        return found


class Relay:
    """Applies relay entries (the writer's pass and the repair) and finds stale ones."""

    def __init__(
        self, redis: ScriptClient, *, partitions: int, stream_maxlen: int, split_by_slot: bool
    ) -> None:
        self._redis = redis
        self._partitions = partitions
        self._maxlen = stream_maxlen
        self._split = split_by_slot

    def partition_key(self, session_id: str) -> str:
        return keys.event_stream(keys.event_partition(session_id, self._partitions))

    async def apply(self, entry: RelayEntry, *, repair: bool = False) -> list[str]:
        """Apply the entry and clear it; the sessions a cap op found over the limit.

        The writer's own pass (not ``repair``) also releases the writer's lease if asked; a
        repair never does: the lease may be a newer writer's by then, under the same owner.
        """
        if not self._split:
            return await self._run(entry, repair, None, effects=True, ack=True)
        slots = {keys.slot_of(key) for key in self._effect_keys(entry)}
        victims: list[str] = []
        calls = (self._run(entry, repair, s, effects=True, ack=False) for s in slots)
        for found in await asyncio.gather(*calls):
            victims += found
        if victims:  # recorded before the entry is cleared, so a crash cannot lose them
            pairs = (part for sid in victims for part in (entry.at_ms, sid))
            with mapped_errors():
                await self._redis.execute("ZADD", keys.SESSIONS_TO_EVICT, "NX", *pairs)
        own = keys.slot_of(keys.session(entry.session_id))
        await self._run(entry, repair, own, effects=False, ack=True)
        return victims

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
        self, entry: RelayEntry, repair: bool, slot: int | None, *, effects: bool, ack: bool
    ) -> list[str]:
        """One script call: the entry's effects in ``slot`` (None: all), then its clearing."""

        def here(key: str) -> bool:
            return effects and (slot is None or keys.slot_of(key) == slot)

        call = _Call()
        sid = entry.session_id
        args: list[Any] = [
            sid,
            entry.first_sequence,
            "r" if repair else "w",
            self._maxlen,
            entry.at_ms,
            entry.at_ms,
        ]
        stream = self.partition_key(sid)
        if entry.events and here(stream):
            args += [call.number(stream), call.number(keys.replayed_entries(stream))]
            args.append(len(entry.events))
            for pairs in entry.events:
                args += [len(pairs) // 2, *pairs]
        else:
            args += [0, 0, 0]
        ops = [op for op in entry.ops if here(op.key)]
        args.append(len(ops))
        for op in ops:
            args += [op.op, call.number(op.key), op.score, op.member]
            if op.op == "cap":
                evict = keys.SESSIONS_TO_EVICT
                args += [op.limit, call.number(evict) if slot is None else 0]
        if entry.jobs and here(keys.OUTBOX):
            args += [call.number(keys.OUTBOX), len(entry.jobs)]
            for pairs in entry.jobs:
                args += [len(pairs) // 2, *pairs]
        else:
            args += [0, 0]
        if ack:
            args += [
                call.number(keys.session_relay(sid)),
                call.number(keys.relay_pending(keys.slot_of(keys.session(sid)))),
                call.number(keys.session_lease(sid)),
                entry.field,
                "" if repair else entry.release_owner,
            ]
        else:
            args += [0, 0, 0, "", ""]
        if not call.keys:
            return []
        with mapped_errors():
            reply = await self._redis.eval_script(source("relay_apply"), call.keys, args)
        return [as_text(member) for member in reply or []]

    async def apply_recorded(self, raw: Iterable[Any], own: str = "") -> list[str]:
        """Apply a session's recorded entries (HGETALL's flat reply), oldest commit first.

        ``own``: the field of the caller's own commit among them, applied as its writer's pass.
        """
        flat = list(raw)
        entries = [decode(as_bytes(value) or b"") for value in flat[1::2]]
        victims: list[str] = []
        for entry in sorted(entries, key=lambda e: (_seq(e.field), e.at_ms)):
            victims += await self.apply(entry, repair=entry.field != own)
        return victims

    async def repair(self, now_ms: int) -> int:
        """Apply the entries older than ``CLAIM_MS``; how many sessions had some.

        One look per node: at every slot's ``relay:{t}`` it serves (a cluster), or all.
        """
        by_node = getattr(self._redis, "slots_by_primary", None)
        groups: list[Iterable[int]] = await by_node() if by_node else [range(keys.SLOTS)]
        repaired = 0
        for group in groups:
            pending_keys = [keys.relay_pending(slot) for slot in group]
            if not pending_keys:
                continue
            args = [now_ms - CLAIM_MS, _REPAIR_BATCH, *pending_keys]
            with mapped_errors():
                found = await self._redis.eval_script(
                    source("relay_pending"), pending_keys[:1], args
                )
            for sid in (as_text(member) for member in found):
                with mapped_errors():
                    recorded = await self._redis.execute("HGETALL", keys.session_relay(sid))
                if not recorded:  # applied meanwhile; a stray registration is dropped
                    with mapped_errors():
                        await self._redis.execute(
                            "ZREM", keys.relay_pending(keys.slot_of(keys.session(sid))), sid
                        )
                    continue
                await self.apply_recorded(recorded)
                repaired += 1
        return repaired


def _seq(field: str) -> int:
    """An entry's place: its commit's last sequence; the purge's entry comes last.

    A commit without events is named ``n+ms`` and goes right after the one named ``n``.
    """
    head = field.split("+", 1)[0]
    return int(head) * 2 + ("+" in field) if head.isdigit() else 1 << 62
