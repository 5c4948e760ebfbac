"""Reading the partitioned event streams with a consumer group (``python -m app events tail``).

One group spans every ``sessiond:events:{p}`` partition, each read by its own reader (on a
Redis Cluster, where its slot lives); several processes with the same group
share the work, and a crashed reader's pending events are claimed by the others once they
have been idle for ``claim_idle_ms`` (XAUTOCLAIM). Each event is handed to ``on_event`` and
acknowledged after it returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from storage import keys
from storage.codec import as_text
from storage.connection import PyClient, connect_any

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
    client: PyClient, streams: list[str], group: str, from_start: bool
) -> None:
    for stream in streams:
        try:
            await client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _connect(url: str, partitions: int) -> PyClient:
    return connect_any(url, pool_size=partitions + 4)  # one blocking read per partition


async def _read(client: PyClient, stream: str, since: str, opts: TailOptions) -> list[Entry]:
    """One partition's next entries: a crashed consumer's first, then ours, then new ones."""
    claimed: Any = await client.xautoclaim(
        stream, opts.group, opts.consumer, min_idle_time=opts.claim_idle_ms, count=100
    )
    if claimed[1]:
        return list(claimed[1])
    block = None if since != ">" else opts.block_ms  # our own pending ones come at once
    fresh: Any = await client.xreadgroup(
        opts.group, opts.consumer, {stream: since}, count=100, block=block
    )
    return [entry for _, entries in fresh or [] for entry in entries]


async def tail(url: str, partitions: int, opts: TailOptions, on_event: OnEvent) -> int:
    """Hand every event to ``on_event`` until ``count`` events (0 = forever) or idle.

    One reader per partition: on a cluster each stream is read where its slot lives (a read
    over several streams would span slots). A reader restarted under the same consumer name
    first gets the events it was handed but never acknowledged.
    """
    client = _connect(url, partitions)
    streams = [keys.event_stream(p) for p in range(partitions)]
    await _ensure_groups(client, streams, opts.group, opts.from_start)
    since = dict.fromkeys(streams, "0")
    reads: dict[asyncio.Task[list[Entry]], str] = {}

    def read(stream: str) -> None:
        reads[asyncio.ensure_future(_read(client, stream, since[stream], opts))] = stream

    for stream in streams:
        read(stream)
    seen = 0
    try:
        while reads and (opts.count == 0 or seen < opts.count):
            done, _ = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                stream = reads.pop(task)
                entries = task.result()
                for entry_id, fields in entries:
                    on_event(as_text(entry_id), {as_text(k): as_text(v) for k, v in fields.items()})
                    await client.xack(stream, opts.group, entry_id)
                    seen += 1
                if not entries and since[stream] == "0":
                    since[stream] = ">"  # our own backlog is done: now the new ones
                elif not entries and opts.until_idle:
                    continue  # this partition is idle: its reader stops
                read(stream)
    finally:
        for task in reads:
            task.cancel()
        await asyncio.gather(*reads, return_exceptions=True)
        await client.aclose()
        # a cancelled blocking read's connection is closed without waiting: let its
        # transport finish closing while the loop still runs
        await asyncio.sleep(0)
    return seen
