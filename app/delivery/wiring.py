"""Channels from the settings, and several workers of one process run together."""

from __future__ import annotations

import asyncio
import os
import socket

from app.delivery.channels import Channel
from app.delivery.files import FileSink
from app.delivery.sms import WebhookChannel
from app.delivery.smtp import SmtpChannel
from app.delivery.worker import DeliveryWorker, Outbox, WorkerConfig
from app.process.settings import Settings
from app.services.sealing import Keyring


def build_channels(settings: Settings, dev_mode: bool) -> dict[str, Channel]:
    """SMTP and the SMS webhook where configured; in dev mode files for the rest."""
    channels: dict[str, Channel] = {}
    if settings.smtp_host:
        channels["email"] = SmtpChannel(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            tls=settings.smtp_tls,
            user=settings.smtp_user,
            password=settings.smtp_password,
        )
    if settings.sms_webhook_url:
        channels["sms"] = WebhookChannel(settings.sms_webhook_url, settings.sms_webhook_secret)
    if dev_mode:
        sink = FileSink(settings.data_dir)
        channels.setdefault("email", sink)
        channels.setdefault("sms", sink)
    return channels


def consumer_name(index: int) -> str:
    """Unique per worker: host, process, index."""
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


async def run_delivery(
    outbox: Outbox,
    settings: Settings,
    *,
    dev_mode: bool,
    stop: asyncio.Event,
    concurrency: int = 1,
    claim_idle_ms: int = WorkerConfig.claim_idle_ms,
    block_ms: int = 500,
    send_timeout_s: float = WorkerConfig.send_timeout_s,
) -> None:
    """One worker with ``concurrency`` sends in flight on ``outbox`` until ``stop``.

    One consumer reading batches makes fewer Redis calls per job than a consumer per send.
    ValueError before anything starts if ``claim_idle_ms`` is unsafe with ``send_timeout_s``
    (``WorkerConfig.claim_idle_problem``). The channels are closed at the end.
    """
    config = WorkerConfig(
        consumer=consumer_name(0),
        concurrency=concurrency,
        max_attempts=settings.delivery_max_attempts,
        backoff_ms=settings.delivery_backoff_ms,
        claim_idle_ms=claim_idle_ms,
        block_ms=block_ms,
        send_timeout_s=send_timeout_s,
    )
    problem = config.claim_idle_problem()
    if problem is not None:
        raise ValueError(problem)
    keyring = Keyring.from_text(settings.master_key, settings.master_key_old)
    channels = build_channels(settings, dev_mode)
    worker = DeliveryWorker(outbox, keyring, channels, config)
    try:
        await worker.run(stop)
    finally:
        for channel in {id(c): c for c in channels.values()}.values():
            await channel.close()
