"""A local SMTP sink that counts what it receives, and a raw aiosmtplib send loop to it.

``python bench/smtpsink.py sink --port P --control-port Q`` accepts every message on
127.0.0.1:P (aiosmtpd, no TLS, no auth) and keeps only a count and the ``time.monotonic()``
of the first and the last message (the clock is system-wide, so the runner can compare it
with its own). On 127.0.0.1:Q it answers one line per connection: ``RESET`` → ``ok``,
``COUNT`` → ``{"count": n, "first": t0, "last": t1}``.

``python bench/smtpsink.py send --port P --count N --concurrency C --out RESULT.json`` sends
N plain-text messages with ``aiosmtplib.send`` (one connection per message, as the delivery
worker's SMTP channel does), C at a time, each built as an ``EmailMessage`` of the shape the
worker sends (From, To, Subject, Message-ID, X-Idempotency-Key, a short body). It writes
``{"sent": n, "failed": n, "errors": {...}}``. It runs on the default asyncio loop, as
``python -m app worker`` does, so loop speed is not what the comparison shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import uvloop
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Counter:
    """aiosmtpd handler: count every message, keep nothing else."""

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    async def handle_DATA(self, _server: SMTP, _session: Session, _envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        now = time.monotonic()
        if self.count == 0:
            self.first = now
        self.count += 1
        self.last = now
        return "250 OK"


async def _sink(port: int, control_port: int) -> None:
    counter = _Counter()
    loop = asyncio.get_running_loop()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).strip()
        if line == b"RESET":
            counter.count, counter.first, counter.last = 0, 0.0, 0.0
            reply = "ok"
        else:
            reply = json.dumps(
                {"count": counter.count, "first": counter.first, "last": counter.last}
            )
        writer.write(reply.encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await loop.create_server(
        lambda: SMTP(counter, hostname="bench-sink"), host="127.0.0.1", port=port
    )
    controller = await asyncio.start_server(control, host="127.0.0.1", port=control_port)
    async with server, controller:
        await asyncio.gather(server.serve_forever(), controller.serve_forever())


def ask(control_port: int, command: str, timeout_s: float = 5.0) -> str:
    """One command to a running sink's control port; its one-line answer."""
    with socket.create_connection(("127.0.0.1", control_port), timeout=timeout_s) as sock:
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def sink_count(control_port: int) -> tuple[int, float, float]:
    """(messages received, monotonic time of the first, of the last)."""
    doc = json.loads(ask(control_port, "COUNT"))
    return int(doc["count"]), float(doc["first"]), float(doc["last"])


def _message(index: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "sessiond@localhost"
    mail["To"] = f"raw{index}@example.com"
    mail["Subject"] = "Your one-time code"
    mail["Message-ID"] = f"<raw-{index}@sessiond>"
    mail["X-Idempotency-Key"] = f"raw-{index}"
    mail.set_content(f"Your code is {index % 100_000_000:08d}.\n")
    return mail


async def _send(port: int, count: int, concurrency: int) -> dict[str, Any]:
    errors: dict[str, int] = {}
    sent = 0
    next_index = 0
    # looked up once, as the worker's SMTP channel does (aiosmtplib would per message)
    local_hostname = socket.getfqdn()

    async def worker() -> None:
        nonlocal sent, next_index
        while next_index < count:
            index = next_index
            next_index += 1
            try:
                await aiosmtplib.send(
                    _message(index),
                    hostname="127.0.0.1",
                    port=port,
                    timeout=20.0,
                    local_hostname=local_hostname,
                )
                sent += 1
            except (aiosmtplib.SMTPException, OSError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return {"sent": sent, "failed": count - sent, "errors": errors}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sink = sub.add_parser("sink")
    sink.add_argument("--port", type=int, required=True)
    sink.add_argument("--control-port", type=int, required=True)
    send = sub.add_parser("send")
    send.add_argument("--port", type=int, required=True)
    send.add_argument("--count", type=int, required=True)
    send.add_argument("--concurrency", type=int, default=1)
    send.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "sink":
        uvloop.run(_sink(args.port, args.control_port))
        return 0
    # uvloop, like ``python -m app worker`` (which runs on it when settings.uvloop is on)
    result = uvloop.run(_send(args.port, args.count, args.concurrency))
    args.out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
