"""E-mail over SMTP (aiosmtplib): plain text, TLS as configured, one connection per message.

The job id goes out as ``Message-ID`` and ``X-Idempotency-Key``, so a message sent again after
a worker crash is recognisable as the same one by the receiving side.
"""

from __future__ import annotations

import asyncio
import socket
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from actors.delivery import DeliveryJob, Message
from app.delivery.channels import DeliveryFailedError
from app.delivery.templates import render

TlsMode = Literal["none", "starttls", "tls"]
TIMEOUT_S = 20.0


class SmtpChannel:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        tls: TlsMode,
        user: str = "",
        password: str = "",
        timeout_s: float = TIMEOUT_S,
        local_hostname: str | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._sender = sender
        self._tls = tls
        self._user = user
        self._password = password
        self._timeout_s = timeout_s
        #: Our name in EHLO. aiosmtplib looks it up (socket.getfqdn, in a thread, maybe DNS)
        #: for every connection unless given; it does not change, so once is enough.
        self._local_hostname = local_hostname

    async def _hostname(self) -> str:
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    def compose(self, job: DeliveryJob, message: Message) -> EmailMessage:
        subject, body = render(job.template, message)
        mail = EmailMessage()
        mail["From"] = self._sender
        mail["To"] = message.recipient
        mail["Subject"] = subject
        mail["Message-ID"] = f"<{job.id}@sessiond>"
        mail["X-Idempotency-Key"] = job.id
        mail.set_content(body)
        return mail

    async def send(self, job: DeliveryJob, message: Message) -> None:
        try:
            await aiosmtplib.send(
                self.compose(job, message),
                hostname=self._host,
                port=self._port,
                username=self._user or None,
                password=self._password or None,
                use_tls=self._tls == "tls",
                start_tls=self._tls == "starttls",
                timeout=self._timeout_s,
                local_hostname=await self._hostname(),
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refusal.code for refusal in exc.recipients})
            raise DeliveryFailedError(f"smtp recipient refused {codes}") from None
        except aiosmtplib.SMTPResponseException as exc:  # the reply text may echo the address
            raise DeliveryFailedError(f"smtp {exc.code}") from None
        except aiosmtplib.SMTPException as exc:
            raise DeliveryFailedError(f"smtp {type(exc).__name__}") from None
        except OSError as exc:
            raise DeliveryFailedError(f"smtp connection {type(exc).__name__}") from None

    async def close(self) -> None:
        """Nothing held between messages."""
