"""``python -m app events tail``: an example consumer of the partitioned event streams.

It joins a consumer group on every ``sessiond:events:{p}`` partition, prints each event as
one JSON line and acknowledges it. Run several with the same ``--group`` to share the work;
a crashed consumer's pending events are claimed by the others after ``--claim-idle-ms``.
The reading itself is ``storage.event_tail``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys

from app.process.settings import Settings
from storage.event_tail import TailOptions, tail


def _parse(args: list[str]) -> TailOptions:
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
    opts = parser.parse_args(args)
    return TailOptions(
        group=opts.group,
        consumer=opts.consumer,
        from_start=opts.from_start,
        count=opts.count,
        block_ms=opts.block_ms,
        until_idle=opts.until_idle,
        claim_idle_ms=opts.claim_idle_ms,
    )


def _print(entry_id: str, fields: dict[str, str]) -> None:
    event: dict[str, object] = dict(fields)
    payload = fields.get("payload")
    if payload:
        event["payload"] = json.loads(payload)
    event["streamId"] = entry_id
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def events_tail(settings: Settings, args: list[str]) -> int:
    if not settings.redis_url:
        print(
            "events tail needs SESSIOND_REDIS_URL (e.g. unix://./var/valkey.sock)", file=sys.stderr
        )
        return 2
    opts = _parse(args)
    asyncio.run(tail(settings.redis_url, settings.event_partitions, opts, _print))
    return 0
