"""The user and organization records, their events, and the ``Change`` transitions return.

Pure data plus the two helpers every transition is built from (``existing``, ``changed``).
``sequence`` (events so far) and the storage revision are owned by storage; a ``Change``
carries the loaded ``sequence`` and storage replaces it with the value it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec.structs import replace

from actors.codes import Code
from actors.errors import NotFound, ServiceError
from actors.permissions import Grant

ACTIVE = "USER_STATE_ACTIVE"
INACTIVE = "USER_STATE_INACTIVE"
LOCKED = "USER_STATE_LOCKED"
INITIAL = "USER_STATE_INITIAL"
DELETED = "USER_STATE_DELETED"


class Profile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    given_name: str
    family_name: str
    nick_name: str = ""
    display_name: str = ""
    preferred_language: str = ""
    gender: str = ""


class Email(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    address: str
    verified: bool = False
    code: Code | None = None


class Phone(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    number: str
    verified: bool = False
    code: Code | None = None


class Totp(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A TOTP authenticator: the seed sealed under the master key, never in clear.

    ``verified``: a code was confirmed (VerifyTOTPRegistration) or it was imported; only
    then is it a factor. ``last_step``: the RFC 6238 time step of the last accepted code;
    a code of that step or an earlier one is a replay.
    """

    sealed_secret: str
    verified: bool = False
    last_step: int = 0


PASSKEY = "passkey"
U2F = "u2f"


class WebAuthnToken(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A passkey or U2F key: registered (``ready``) or waiting for its registration.

    A pending registration holds its ``challenge`` until ``expires_ms``; it is used by the
    first verification, whatever its outcome. ``by_code``: begun with a registration code,
    so the login client that presented it may finish it. Keys and ids are base64url; the
    public key is no secret. ``sign_count``: the authenticator's counter at its last use.
    """

    id: str
    kind: str
    rp_id: str
    creation_ms: int
    ready: bool = False
    name: str = ""
    credential_id: str = ""
    public_key: str = ""
    sign_count: int = 0
    aaguid: str = ""
    challenge: str = ""
    expires_ms: int = 0
    by_code: bool = False
    attachment: str = ""


class RegistrationCode(msgspec.Struct, frozen=True, kw_only=True):
    """A one-time code that lets a user without a session register a passkey (its hash)."""

    id: str
    code_hash: str
    expires_ms: int


class SecondFactors(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The second factors a human has registered (stored in the user hash's own fields).

    ``recovery_codes``: keyed hashes of the codes not used yet (each is usable once).
    """

    totp: Totp | None = None
    otp_sms: bool = False
    otp_email: bool = False
    recovery_codes: tuple[str, ...] = ()
    webauthn: tuple[WebAuthnToken, ...] = ()
    passkey_codes: tuple[RegistrationCode, ...] = ()


class IdpLink(msgspec.Struct, frozen=True, kw_only=True):
    """The user's account at an identity provider: (idp, the provider's user id) is unique."""

    idp_id: str
    user_id: str
    user_name: str = ""


class Human(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    profile: Profile
    email: Email
    phone: Phone | None = None
    password_hash: str = ""
    password_change_required: bool = False
    password_changed_ms: int = 0
    password_code: Code | None = None
    factors: SecondFactors = SecondFactors()
    idp_links: tuple[IdpLink, ...] = ()


class Machine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    description: str = ""


class User(msgspec.Struct, frozen=True, kw_only=True):
    """One user; exactly one of ``human`` / ``machine`` is set."""

    id: str
    org_id: str
    username: str
    creation_ms: int
    change_ms: int
    state: str = ACTIVE
    sequence: int = 0
    failed_password_attempts: int = 0
    #: Failed TOTP / OTP / recovery-code checks since the last success or unlock.
    failed_otp_attempts: int = 0
    #: Bumped whenever a fact sessions show changes (names, password, state).
    view_version: int = 0
    grants: tuple[Grant, ...] = ()
    human: Human | None = None
    machine: Machine | None = None


class Org(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    domain: str
    creation_ms: int
    sequence: int = 0


class UserEvent(msgspec.Struct, frozen=True):
    """A ZITADEL event type and its payload; never a password, hash or code."""

    type: str
    payload: dict[str, Any] = {}


@dataclass(frozen=True)
class Change:
    """A transition's result: the new record and its events.

    With ``error`` set, the events are stored and then the error is raised: ZITADEL records
    failed verifications even though the request fails.
    """

    user: User
    events: tuple[UserEvent, ...]
    error: ServiceError | None = None


def org_not_found() -> NotFound:
    return NotFound("QUERY-iTTGJ", "Errors.Org.NotFound")


def existing(user: User | None, error_id: str, key: str = "Errors.User.NotFound") -> User:
    """The user a transition applies to; NotFound(``error_id``) if missing or deleted."""
    if user is None or user.state == DELETED:
        raise NotFound(error_id, key)
    return user


def changed(
    user: User, now_ms: int, events: tuple[UserEvent, ...], *, view: bool = False, **fields: Any
) -> Change:
    """``user`` with ``fields`` replaced, changed at ``now_ms``; ``view`` bumps view_version."""
    version = user.view_version + 1 if view else user.view_version
    return Change(replace(user, change_ms=now_ms, view_version=version, **fields), events)
