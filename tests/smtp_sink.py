"""An in-process SMTP server (aiosmtpd) that keeps what it receives, for delivery tests.

It runs in its own thread (aiosmtpd's Controller), so both in-process workers and worker
processes can send to it. ``refuse`` makes it answer DATA with that code (echoing the
recipient, as real servers do, so tests can check it never reaches a log); ``hold`` makes it
keep a received message unanswered until released, to kill a worker mid-delivery.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.processes import free_port


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.attempts: list[float] = []
        #: The name each client gave in EHLO/HELO, per message.
        self.helo: list[str] = []
        self.refuse: int | None = None
        self.hold = threading.Event()
        self.arrived = threading.Event()
        self.port = free_port()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.attempts.append(time.monotonic())
        self.helo.append(str(session.host_name))
        if self.refuse is not None:
            return f"{self.refuse} 5.7.1 <{envelope.rcpt_tos[0]}> refused"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.arrived.set()
        while self.hold.is_set():
            await asyncio.sleep(0.01)
        return "250 OK"

    def per_key(self) -> Counter[str]:
        return Counter(str(m["X-Idempotency-Key"]) for m in self.messages)

    def wait(self, count: int, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < count:
            assert time.monotonic() < deadline, f"{len(self.messages)} of {count} messages"
            time.sleep(0.02)


def code_in(message: EmailMessage) -> str:
    """The code a test sealed into the job, read back out of the mail's text."""
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"code is (\S+)", body.get_content())
    assert found is not None
    return found.group(1)


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        sink.hold.clear()
        controller.stop()
