"""``python -m app worker`` (deliver the outbox) and ``python -m app outbox`` (inspect it).

The worker is a separate process so delivery scales apart from the API: run one or more on
any host with the same settings (``--concurrency``: sends in flight at once in one process).
In the embedded dev setup the main process runs one itself, in a thread (``DevDelivery``).
The delivery itself is ``app.delivery``; the outbox is ``storage.outbox``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from dataclasses import asdict

import structlog

from app.delivery.wiring import build_channels, run_delivery
from app.delivery.worker import WorkerConfig
from app.process.master_key import with_master_key
from app.process.settings import Settings
from storage.outbox import RedisOutbox, open_outbox

log = structlog.get_logger("sessiond.delivery")


def _outbox(settings: Settings, concurrency: int = 1) -> RedisOutbox:
    return open_outbox(
        settings.redis_url,
        partitions=settings.event_partitions,
        event_maxlen=settings.event_stream_maxlen,
        pool_size=concurrency + 2,
    )


def _needs_url(settings: Settings, command: str) -> bool:
    if settings.redis_url:
        return True
    print(
        f"{command} needs SESSIOND_REDIS_URL (in dev mode `python -m app` delivers itself;"
        " its Valkey is unix://./var/valkey.sock)",
        file=sys.stderr,
    )
    return False


def worker_command(settings: Settings, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app worker")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="messages sent at once by this process"
    )
    parser.add_argument(
        "--claim-idle-ms",
        type=int,
        default=WorkerConfig.claim_idle_ms,
        help="take over a crashed worker's job after it was pending this long"
        " (above 2 x --send-timeout-s + 1 s)",
    )
    parser.add_argument(
        "--send-timeout-s",
        type=float,
        default=WorkerConfig.send_timeout_s,
        help="give up one send after this long (it is retried later)",
    )
    parser.add_argument("--block-ms", type=int, default=500, help="wait for new jobs this long")
    opts = parser.parse_args(args)
    problem = WorkerConfig(
        consumer="", claim_idle_ms=opts.claim_idle_ms, send_timeout_s=opts.send_timeout_s
    ).claim_idle_problem()
    if problem is not None:
        parser.error(problem)  # exits 2
    if not _needs_url(settings, "worker"):
        return 2
    settings = with_master_key(settings, dev_mode=False)
    channels = sorted(build_channels(settings, dev_mode=False))
    if not channels:
        log.warning("no delivery channel configured: every job will fail and be dead-lettered")
    log.info("delivery worker started", concurrency=opts.concurrency, channels=channels)
    work = _work(settings, opts.concurrency, opts.claim_idle_ms, opts.block_ms, opts.send_timeout_s)
    if settings.uvloop:  # as the API server: a cheaper loop leaves more CPU for sending
        import uvloop

        uvloop.run(work)
    else:
        asyncio.run(work)
    log.info("delivery worker stopped")
    return 0


async def _work(
    settings: Settings, concurrency: int, claim_idle_ms: int, block_ms: int, send_timeout_s: float
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    outbox = _outbox(settings, concurrency)
    try:
        await run_delivery(
            outbox,
            settings,
            dev_mode=False,
            stop=stop,
            concurrency=concurrency,
            claim_idle_ms=claim_idle_ms,
            block_ms=block_ms,
            send_timeout_s=send_timeout_s,
        )
    finally:
        await outbox.close()


def outbox_command(settings: Settings, args: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app outbox",
        description="pending and dead-lettered delivery jobs (never their content)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON document")
    sub = parser.add_subparsers(dest="command")
    requeue = sub.add_parser("requeue", help="put dead-lettered jobs back into the outbox")
    requeue.add_argument("ids", nargs="*", help="dead-letter ids or job ids")
    requeue.add_argument("--all", action="store_true")
    opts = parser.parse_args(args)
    if not _needs_url(settings, "outbox"):
        return 2
    if opts.command == "requeue":
        if not opts.ids and not opts.all:
            print("requeue: name the ids, or --all", file=sys.stderr)
            return 2
        ids = None if opts.all else list(opts.ids)
        requeued = asyncio.run(_requeue(settings, ids))
        print(json.dumps({"requeued": requeued}) if opts.json else f"requeued {len(requeued)}")
        return 0
    report = asyncio.run(_report(settings))
    print(json.dumps(report) if opts.json else _text(report))
    return 0


async def _requeue(settings: Settings, ids: list[str] | None) -> list[str]:
    outbox = _outbox(settings)
    try:
        return await outbox.requeue_dead(ids)
    finally:
        await outbox.close()


async def _report(settings: Settings) -> dict[str, object]:
    outbox = _outbox(settings)
    try:
        summary = await outbox.pending_summary()
        dead = await outbox.dead_jobs()
    finally:
        await outbox.close()
    return {
        "unread": summary.unread,
        "pending": [asdict(job) for job in summary.pending],
        "dead": [asdict(job) for job in dead],
    }


def _text(report: dict[str, object]) -> str:
    pending = report["pending"]
    dead = report["dead"]
    assert isinstance(pending, list)  # noqa: S101 - built by _report
    assert isinstance(dead, list)  # noqa: S101
    lines = [f"unread: {report['unread']}", f"pending: {len(pending)}"]
    lines += [
        f"  {p['entry_id']} job={p['job_id']} template={p['template']} attempts={p['attempts']}"
        f" consumer={p['consumer']} retry_at_ms={p['retry_at_ms']}"
        for p in pending
    ]
    lines.append(f"dead: {len(dead)}")
    lines += [
        f"  {d['dead_id']} job={d['job_id']} template={d['template']} attempts={d['attempts']}"
        f" reason={d['reason']!r}"
        for d in dead
    ]
    return "\n".join(lines)


class DevDelivery:
    """One delivery worker in a thread of the dev-mode main process, on its own loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._thread = threading.Thread(target=self._main, name="sessiond-delivery", daemon=True)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> DevDelivery:
        self._thread.start()
        self._started.wait(5)
        log.info("delivering messages in-process (dev mode)")
        return self

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        outbox = _outbox(self._settings)
        try:
            await run_delivery(outbox, self._settings, dev_mode=True, stop=self._stop)
        except Exception as exc:
            log.error("dev-mode delivery stopped", error=type(exc).__name__)
        finally:
            await outbox.close()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the job in flight finish (within ``timeout_s``) and end the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
