"""The text of each message template: a subject (e-mail only) and a plain-text body."""

from __future__ import annotations

from actors.delivery import Message

#: template → (subject, the line that carries the code)
_TEXTS = {
    "otp_email": ("Your one-time login code", "Your login code is {code}"),
    "otp_sms": ("Your one-time login code", "Your login code is {code}"),
    "email_code": ("Verify your e-mail address", "Your e-mail verification code is {code}"),
    "phone_code": ("Verify your phone number", "Your phone verification code is {code}"),
    "password_reset": ("Reset your password", "Your password reset code is {code}"),
    "passkey_registration": ("Register your passkey", "Your passkey registration code is {code}"),
}
_FALLBACK = ("Your code", "Your code is {code}")


def render(template: str, message: Message) -> tuple[str, str]:
    """(subject, body) of ``message``; the link, when the request rendered one, follows."""
    subject, line = _TEXTS.get(template, _FALLBACK)
    body = line.format(code=message.code)
    if message.url:
        body += f"\n\nOr open this link:\n{message.url}"
    return subject, body + "\n"


def sms_text(template: str, message: Message) -> str:
    """The SMS body: the code line alone (no link, it would not fit one message)."""
    _, line = _TEXTS.get(template, _FALLBACK)
    return line.format(code=message.code)
