"""Composing the messages the service sends: a delivery job with the message sealed inside.

One place builds every job (OTP challenges, verification and reset codes), so each gets the
same guarantees: the channel is configured (else FailedPrecondition — outside dev mode a
code nobody can deliver must not be issued), the link is rendered from the request's URL
template now, and recipient, code and link are sealed under the master key.
"""

from __future__ import annotations

import secrets

import msgspec

from actors import url_templates
from actors.delivery import OUTBOX_PURPOSE, Channel, DeliveryJob, Message
from actors.errors import FailedPrecondition
from actors.ports import Clock
from actors.user_records import User
from actors.users import display_name
from app.services.sealing import Keyring


def channel_not_configured() -> FailedPrecondition:
    return FailedPrecondition("NOTIF-noChannel", "Errors.Notification.ChannelNotConfigured")


class MessageComposer:
    def __init__(self, keyring: Keyring, clock: Clock, channels: frozenset[str]) -> None:
        self._keyring = keyring
        self._clock = clock
        self._channels = channels

    def require(self, channel: Channel) -> None:
        """Refuse before anything is written if ``channel`` cannot deliver."""
        if channel not in self._channels:
            raise channel_not_configured()

    def compose(
        self,
        user: User,
        *,
        channel: Channel,
        template: str,
        recipient: str,
        code: str,
        url_template: str | None = None,
        session_id: str = "",
        sent_event: str = "",
        code_id: str = "",
    ) -> DeliveryJob:
        self.require(channel)
        language = user.human.profile.preferred_language if user.human else ""
        name = display_name(user)
        url = ""
        if url_template:
            url = url_templates.render(
                url_template,
                {
                    "Code": code,
                    "UserID": user.id,
                    "OrgID": user.org_id,
                    "LoginName": user.username,
                    "DisplayName": name,
                    "PreferredLanguage": language,
                    "SessionID": session_id,
                    "CodeID": code_id,
                },
            )
        message = Message(
            recipient=recipient,
            code=code,
            url=url,
            login_name=user.username,
            display_name=name,
            preferred_language=language,
        )
        return DeliveryJob(
            id=secrets.token_hex(16),
            channel=channel,
            template=template,
            user_id=user.id,
            created_ms=self._clock.now_ms(),
            sealed=self._keyring.seal(OUTBOX_PURPOSE, msgspec.json.encode(message)),
            session_id=session_id,
            sent_event=sent_event,
        )
