"""The dev-mode sink: each message becomes a file under ``<data_dir>/outbox/``.

With no SMTP server or SMS webhook configured in the embedded dev setup, codes must still
reach the developer. Files are created with mode 0600 (no moment where others could read
them), the log names the file and never its content. A file appears under its name only
once complete (written in a staging directory beside it, then hard-linked into place), so
whoever watches the outbox never reads half a message. A job written already (a redelivery)
keeps its first file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

import structlog

from actors.delivery import DeliveryJob, Message
from app.delivery.templates import render

OUTBOX_DIR = "outbox"
STAGING_DIR = "outbox-staging"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

log = structlog.get_logger(__name__)


class FileSink:
    def __init__(self, data_dir: str) -> None:
        self.directory = Path(data_dir) / OUTBOX_DIR
        self.staging = Path(data_dir) / STAGING_DIR

    def path_of(self, job: DeliveryJob) -> Path:
        return self.directory / f"{job.created_ms}-{_UNSAFE.sub('_', job.id)}-{job.channel}.txt"

    async def send(self, job: DeliveryJob, message: Message) -> None:
        path = await asyncio.to_thread(self._write, job, message)
        log.info("dev mode: message written to a file", path=str(path), template=job.template)

    def _write(self, job: DeliveryJob, message: Message) -> Path:
        subject, body = render(job.template, message)
        text = (
            f"To: {message.recipient}\nSubject: {subject}\nIdempotency-Key: {job.id}\n"
            f"Template: {job.template}\nChannel: {job.channel}\n\n{body}"
        )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_of(job)
        if path.exists():
            return path
        staged = self.staging / f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(text)
            with contextlib.suppress(FileExistsError):  # a redelivery raced us: first wins
                os.link(staged, path)
        finally:
            staged.unlink(missing_ok=True)
        return path

    async def close(self) -> None:
        """Nothing to release."""
