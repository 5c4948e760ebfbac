"""Credential transitions: passwords, the reset code, email/phone verification, PAT events.

Pure: hashes and codes arrive already produced; a failed verification is a ``Change`` with
``error`` set, so its event is stored before the request fails (as in ZITADEL).
"""

from __future__ import annotations

from typing import Any

from msgspec.structs import replace

from actors.codes import Code, code_added_payload, code_matches
from actors.errors import FailedPrecondition, InvalidArgument
from actors.timefmt import rfc3339_ms
from actors.user_records import Change, Human, User, UserEvent, changed, existing


def _human(user: User | None, error_id: str) -> tuple[User, Human]:
    user = existing(user, error_id)
    if user.human is None:
        raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
    return user, user.human


def set_password(
    user: User | None, password_hash: str, change_required: bool, now_ms: int
) -> Change:
    """New hash; sessions' password factors checked before ``now_ms`` stop counting."""
    user, human = _human(user, "COMMAND-G8dh3")
    human = replace(
        human,
        password_hash=password_hash,
        password_change_required=change_required,
        password_changed_ms=now_ms,
        password_code=None,
    )
    event = UserEvent(
        "user.human.password.changed", {"changeRequired": True} if change_required else {}
    )
    return changed(user, now_ms, (event,), view=True, human=human, failed_password_attempts=0)


def replace_password_hash(user: User | None, password_hash: str, now_ms: int) -> Change:
    """Same password, new parameters (transparent rehash): nothing sessions show changes."""
    user, human = _human(user, "COMMAND-3n77z")
    return changed(
        user,
        now_ms,
        (UserEvent("user.human.password.hash.updated"),),
        human=replace(human, password_hash=password_hash),
    )


def set_password_code(user: User | None, code: Code, returned: bool, now_ms: int) -> Change:
    user, human = _human(user, "COMMAND-reset")
    return changed(
        user,
        now_ms,
        (UserEvent("user.human.password.code.added", code_added_payload(code, returned, now_ms)),),
        human=replace(human, password_code=code),
    )


def check_password_code(user: User, given: str, now_ms: int) -> None:
    """The reset code of SetPassword's ``verificationCode`` branch (crypto.VerifyCode ids)."""
    code = user.human.password_code if user.human is not None else None
    if code is None:
        raise FailedPrecondition("COMMAND-2M9fs", "Errors.User.Code.NotFound")
    if code.expires_ms < now_ms:
        raise FailedPrecondition("CODE-QvUQ4P", "Errors.User.Code.Expired")
    if not code_matches(user.id, code, given, now_ms):
        raise InvalidArgument("CODE-woT0xc", "Errors.User.Code.Invalid")


def verify_email(user: User | None, given: str, now_ms: int) -> Change:
    user = existing(user, "COMMAND-ieJ2e", "Errors.User.Email.NotFound")
    human = user.human
    if human is not None and code_matches(user.id, human.email.code, given, now_ms):
        email = replace(human.email, verified=True, code=None)
        return changed(
            user,
            now_ms,
            (UserEvent("user.human.email.verified"),),
            human=replace(human, email=email),
        )
    return _code_failed(user, now_ms, "user.human.email.verification.failed")


def verify_phone(user: User | None, given: str, now_ms: int) -> Change:
    user = existing(user, "COMMAND-ieJ2e", "Errors.User.Phone.NotFound")
    human = user.human
    phone = human.phone if human is not None else None
    if human is not None and phone is not None and code_matches(user.id, phone.code, given, now_ms):
        verified = replace(phone, verified=True, code=None)
        return changed(
            user,
            now_ms,
            (UserEvent("user.human.phone.verified"),),
            human=replace(human, phone=verified),
        )
    return _code_failed(user, now_ms, "user.human.phone.verification.failed")


def _code_failed(user: User, now_ms: int, event_type: str) -> Change:
    """Wrong, expired or missing code: all the same to the caller (ZITADEL COMMAND-eis9R)."""
    change = changed(user, now_ms, (UserEvent(event_type),))
    return Change(
        change.user, change.events, InvalidArgument("COMMAND-eis9R", "Errors.User.Code.Invalid")
    )


def pat_added_event(token_id: str, expiration_ms: int | None) -> UserEvent:
    payload: dict[str, Any] = {"tokenId": token_id}
    if expiration_ms:
        payload["expiration"] = rfc3339_ms(expiration_ms)
    return UserEvent("user.personal.access.token.added", payload)
