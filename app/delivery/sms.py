"""SMS through a webhook: a signed JSON POST the operator's SMS gateway adapter receives.

Body: ``{"to", "text", "idempotencyKey", "template"}``. Headers: ``Idempotency-Key`` (the job
id), ``X-Sessiond-Timestamp`` (unix seconds) and ``X-Sessiond-Signature: sha256=<hex>``, the
HMAC-SHA256 under ``sms_webhook_secret`` of ``<timestamp>.<raw body>``. The timestamp is
signed so a captured request cannot be replayed later: receivers reject old ones
(``verify``). Any 2xx answer means delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import aiohttp
import msgspec

from actors.delivery import DeliveryJob, Message
from app.delivery.channels import DeliveryFailedError
from app.delivery.templates import sms_text

SIGNATURE_HEADER = "X-Sessiond-Signature"
TIMESTAMP_HEADER = "X-Sessiond-Timestamp"
TIMEOUT_S = 20.0
#: How old a signed request ``verify`` still accepts.
MAX_AGE_S = 300


class SmsRequest(msgspec.Struct, frozen=True, rename="camel"):
    to: str
    text: str
    idempotency_key: str
    template: str


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now_s: float,
    max_age_s: int = MAX_AGE_S,
) -> bool:
    """What a receiver checks: a fresh timestamp and, in constant time, the signature."""
    try:
        age = now_s - int(timestamp)
    except ValueError:
        return False
    if abs(age) > max_age_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookChannel:
    def __init__(self, url: str, secret: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self._url = url
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, job: DeliveryJob, message: Message) -> None:
        body = msgspec.json.encode(
            SmsRequest(
                to=message.recipient,
                text=sms_text(job.template, message),
                idempotency_key=job.id,
                template=job.template,
            )
        )
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": job.id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                if not 200 <= response.status < 300:
                    raise DeliveryFailedError(f"webhook status {response.status}")
        except aiohttp.ClientError as exc:
            raise DeliveryFailedError(f"webhook {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
