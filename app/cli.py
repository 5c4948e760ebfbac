"""``python -m app events tail``: an example consumer of the partitioned event streams.

It joins a consumer group on every ``sessiond:events:{p}`` partition, prints each event as
one JSON line and acknowledges it. Run several with the same ``--group`` to share the work;
a crashed consumer's pending events are claimed by the others after ``--claim-idle-ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from app.settings import Settings
from storage import keys
from storage.codec import as_text
from storage.connection import connect

Entry = tuple[bytes, dict[bytes, bytes]]


def _parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app events tail")
    parser.add_argument("--group", default="events-tail")
    parser.add_argument("--consumer", default=f"{socket.gethostname()}-{id(parser)}")
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="a new group starts at the oldest event, not at new ones",
    )
    parser.add_argument("--count", type=int, default=0, help="stop after N events (0 = never)")
    parser.add_argument("--block-ms", type=int, default=5000)
    parser.add_argument(
        "--until-idle",
        action="store_true",
        help="exit when a read waited --block-ms and found nothing",
    )
    parser.add_argument("--claim-idle-ms", type=int, default=60_000)
    return parser.parse_args(args)


async def _ensure_groups(
    client: aioredis.Redis, streams: list[str], group: str, from_start: bool
) -> None:
    for stream in streams:
        try:
            await client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _print(entry_id: bytes, fields: dict[bytes, bytes]) -> None:
    event = {k.decode(): v.decode() for k, v in fields.items()}
    payload = event.get("payload")
    if payload:
        event["payload"] = json.loads(payload)
    event["streamId"] = entry_id.decode()
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _tail(settings: Settings, opts: argparse.Namespace) -> int:
    client = connect(settings.redis_url)
    streams = [keys.event_stream(p) for p in range(settings.event_partitions)]
    await _ensure_groups(client, streams, opts.group, opts.from_start)
    seen = 0
    try:
        while opts.count == 0 or seen < opts.count:
            batch: list[tuple[str, list[Entry]]] = []
            for stream in streams:  # first take over what a crashed consumer left pending
                claimed: Any = await client.xautoclaim(
                    stream, opts.group, opts.consumer, min_idle_time=opts.claim_idle_ms, count=100
                )
                if claimed[1]:
                    batch.append((stream, claimed[1]))
            fresh: Any = await client.xreadgroup(
                opts.group,
                opts.consumer,
                dict.fromkeys(streams, ">"),
                count=100,
                block=opts.block_ms,
            )
            batch += [(as_text(stream), entries) for stream, entries in fresh or []]
            if not batch and opts.until_idle:
                break
            for stream, entries in batch:
                for entry_id, fields in entries:
                    _print(entry_id, fields)
                    await client.xack(stream, opts.group, entry_id)
                    seen += 1
    finally:
        await client.aclose()
    return 0


def events_tail(settings: Settings, args: list[str]) -> int:
    if not settings.redis_url:
        print(
            "events tail needs SESSIOND_REDIS_URL (e.g. unix://./var/valkey.sock)", file=sys.stderr
        )
        return 2
    return asyncio.run(_tail(settings, _parse(args)))
