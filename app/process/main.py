"""``python -m app`` (also the ``sessiond`` console script): serve the API.

``python -m app events tail`` reads the event streams instead (see ``app.process.cli``);
``python -m app worker`` delivers the outbox's messages and ``python -m app outbox`` shows
and requeues its jobs (see ``app.process.delivery_cli``). With no ``SESSIOND_REDIS_URL`` an
embedded Valkey is started for a single-node dev setup, and one delivery worker runs in
this process.
"""

from __future__ import annotations

import asyncio
import os
import sys

import msgspec
import structlog

from app.process.bootstrap import bootstrap
from app.process.logging import configure_logging
from app.process.master_key import with_master_key
from app.process.server import serve
from app.process.settings import Settings
from app.process.workers import run_workers
from app.services.sealing import new_master_key
from storage.embedded import EmbeddedRedis

log = structlog.get_logger("sessiond")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    settings = Settings.from_env(os.environ)
    configure_logging(settings)
    if args[:2] == ["events", "tail"]:
        from app.process.cli import events_tail

        return events_tail(settings, args[2:])
    if args[:1] == ["worker"]:
        from app.process.delivery_cli import worker_command

        return worker_command(settings, args[1:])
    if args[:1] == ["outbox"]:
        from app.process.delivery_cli import outbox_command

        return outbox_command(settings, args[1:])
    if args == ["master-key"]:
        print(new_master_key())
        return 0
    if args:
        print(
            "usage: python -m app [events tail [--group G] [--from-start] | master-key"
            " | worker [--concurrency N] | outbox [requeue IDS|--all]]",
            file=sys.stderr,
        )
        return 2
    embedded = None
    delivery = None
    if settings.embedded:
        embedded = EmbeddedRedis.start(settings.data_dir)
        log.warning(
            "single-node dev setup: embedded Valkey; set SESSIOND_REDIS_URL for production",
            url=embedded.url,
            data_dir=settings.data_dir,
        )
        settings = msgspec.structs.replace(settings, redis_url=embedded.url)
    try:
        settings = with_master_key(settings, dev_mode=embedded is not None)
        asyncio.run(bootstrap(settings, dev_mode=embedded is not None))
        if embedded is not None:  # elsewhere `python -m app worker` processes deliver
            from app.process.delivery_cli import DevDelivery

            delivery = DevDelivery(settings).start()
        log.info(
            "serving", host=settings.http_host, port=settings.http_port, workers=settings.workers
        )
        return run_workers(settings, serve)
    finally:
        if delivery is not None:
            delivery.stop()
        if embedded is not None:
            embedded.stop()
