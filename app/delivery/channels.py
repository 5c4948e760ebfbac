"""What a delivery channel is, and which channels a process can use.

A channel sends one message and either returns (delivered) or raises
``DeliveryFailedError`` with a reason that is safe to store and log: never the code, the
recipient or a secret (a server's reply text may echo the address, so it is not copied).
"""

from __future__ import annotations

from typing import Protocol

from actors.delivery import DeliveryJob, Message
from app.process.settings import Settings


class DeliveryFailedError(Exception):
    """The message was not delivered; ``reason`` names why without revealing it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Channel(Protocol):
    async def send(self, job: DeliveryJob, message: Message) -> None:
        """Deliver ``message`` once, sending ``job.id`` as the idempotency key."""

    async def close(self) -> None:
        """Release connections (called once the worker stopped)."""


def configured_channels(settings: Settings, dev_mode: bool) -> set[str]:
    """The channels (``email``, ``sms``) messages can go out on.

    In dev mode both always can: what has no server configured is written to files under
    ``<data_dir>/outbox/``. Elsewhere a code must not be issued that nobody can deliver, so
    the API refuses to send one on a channel missing here (FailedPrecondition).
    """
    channels = set()
    if settings.smtp_host or dev_mode:
        channels.add("email")
    if settings.sms_webhook_url or dev_mode:
        channels.add("sms")
    return channels
