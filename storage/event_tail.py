"""Reading the partitioned event streams with a consumer group (``python -m app events tail``).

One group spans every ``sessiond:events:{p}`` partition; several readers with the same group
share the work, and a crashed reader's pending events are claimed by the others once they
have been idle for ``claim_idle_ms`` (XAUTOCLAIM). Each event is handed to ``on_event`` and
acknowledged after it returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from storage import keys
from storage.codec import as_text
from storage.connection import connect

Entry = tuple[bytes, dict[bytes, bytes]]
#: (stream entry id, the event's fields)
OnEvent = Callable[[str, dict[str, str]], None]


@dataclass(frozen=True, slots=True)
class TailOptions:
    group: str
    consumer: str
    from_start: bool = False
    count: int = 0
    block_ms: int = 5000
    until_idle: bool = False
    claim_idle_ms: int = 60_000


async def _ensure_groups(
    client: aioredis.Redis, streams: list[str], group: str, from_start: bool
) -> None:
    for stream in streams:
        try:
            await client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def _batch(
    client: aioredis.Redis, streams: list[str], opts: TailOptions
) -> list[tuple[str, list[Entry]]]:
    batch: list[tuple[str, list[Entry]]] = []
    for stream in streams:  # first take over what a crashed consumer left pending
        claimed: Any = await client.xautoclaim(
            stream, opts.group, opts.consumer, min_idle_time=opts.claim_idle_ms, count=100
        )
        if claimed[1]:
            batch.append((stream, claimed[1]))
    fresh: Any = await client.xreadgroup(
        opts.group, opts.consumer, dict.fromkeys(streams, ">"), count=100, block=opts.block_ms
    )
    return batch + [(as_text(stream), entries) for stream, entries in fresh or []]


async def tail(url: str, partitions: int, opts: TailOptions, on_event: OnEvent) -> int:
    """Hand every event to ``on_event`` until ``count`` events (0 = forever) or idle."""
    client = connect(url)
    streams = [keys.event_stream(p) for p in range(partitions)]
    await _ensure_groups(client, streams, opts.group, opts.from_start)
    seen = 0
    try:
        while opts.count == 0 or seen < opts.count:
            batch = await _batch(client, streams, opts)
            if not batch and opts.until_idle:
                break
            for stream, entries in batch:
                for entry_id, fields in entries:
                    on_event(as_text(entry_id), {as_text(k): as_text(v) for k, v in fields.items()})
                    await client.xack(stream, opts.group, entry_id)
                    seen += 1
    finally:
        await client.aclose()
    return seen
