"""Messages the service sends (OTP codes, verification codes): the outbox job contract.

A job is written to the outbox stream in the same atomic step as the change that needs it
(a challenge, a verification code), and delivered later by a worker. Everything a reader of
the stream could misuse (recipient, code, link) is inside ``sealed``, encrypted under the
master key (purpose ``OUTBOX_PURPOSE``); the plain fields only route and describe the job.
"""

from __future__ import annotations

from typing import Literal

import msgspec

OUTBOX_PURPOSE = "outbox"

Channel = Literal["email", "sms"]


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The sealed part of a job: who gets what."""

    recipient: str
    code: str
    #: The link of the e-mail, already rendered from the request's URL template.
    url: str = ""
    login_name: str = ""
    display_name: str = ""
    preferred_language: str = ""


class DeliveryJob(msgspec.Struct, frozen=True, kw_only=True):
    """One message to deliver; ``id`` is its idempotency key (sent with the message)."""

    id: str
    channel: Channel
    #: What the message is: otp_email | otp_sms | email_code | phone_code | password_reset.
    template: str
    user_id: str
    created_ms: int
    #: ``Message`` as JSON, sealed with ``Keyring.seal(OUTBOX_PURPOSE, ...)``.
    sealed: str
    session_id: str = ""
    #: The event published once delivered (``session.otp.email.sent``, ...).
    sent_event: str = ""
