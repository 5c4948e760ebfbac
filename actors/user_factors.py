"""Second-factor transitions: TOTP, OTP SMS / Email, recovery codes, and what a user has ready.

Pure: the TOTP seed arrives already sealed (or, to verify a code, already opened), recovery
codes arrive as keyed hashes, the time as ``now_ms``. Events and error ids are ZITADEL's
(``internal/command/user_human_otp.go``, ``user_human_recovery_codes.go``); no event payload
carries a seed, a code or a hash of one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re

import pyotp
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.hotp import HOTP
from msgspec.structs import replace

from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ValidationFailed,
)
from actors.user_records import (
    LOCKED,
    PASSKEY,
    U2F,
    Change,
    Human,
    SecondFactors,
    Totp,
    User,
    UserEvent,
    changed,
    existing,
)

#: RFC 6238 as ZITADEL (pquerna/otp) uses it: SHA-1, 6 digits, 30 s steps, ±1 step of skew.
TOTP_PERIOD_S = 30
TOTP_DIGITS = 6
TOTP_SKEW = 1
#: ZITADEL's ``RecoveryCodes.MaxCount``.
MAX_RECOVERY_CODES = 10
#: The shortest seed accepted: NIST SP 800-63B's 112 bits (pyotp refuses shorter ones).
MIN_SECRET_BYTES = 14
#: ``AddHumanUser.totpSecret``: base32 (case-insensitive, optional padding) of 112 bits or
#: more, i.e. at least 23 letters.
BASE32_PATTERN = "^[A-Za-z2-7]{23,}=*$"
_TOTP_SECRET = re.compile(BASE32_PATTERN)

#: ``AuthenticationMethodType`` names are this prefix and the method.
METHOD_PREFIX = "AUTHENTICATION_METHOD_TYPE_"

_OTP = "user.human.mfa.otp."
_RECOVERY = "user.human.mfa.recoverycode."
_NOT_EXISTING = "Errors.User.MFA.OTP.NotExisting"
_ALREADY_READY = "Errors.User.MFA.OTP.AlreadyReady"
_NOT_READY = "Errors.User.MFA.OTP.NotReady"


def _human(user: User | None) -> tuple[User, Human]:
    user = existing(user, "QUERY-Dfbg2")
    if user.human is None:
        raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
    return user, user.human


def _with(user: User, human: Human, now_ms: int, event: UserEvent, **factors: object) -> Change:
    new = replace(human, factors=replace(human.factors, **factors))
    return changed(user, now_ms, (event,), human=new)


# -- TOTP ----------------------------------------------------------------------------------


def normalized_totp_secret(text: str) -> str:
    """An imported seed (``totpSecret``) in the form stored: upper case, no padding.

    ValidationFailed (400) unless it is base32 of at least 112 bits. ZITADEL takes shorter
    seeds too, but such a seed is guessable and pyotp cannot check its codes.
    """
    if not _TOTP_SECRET.fullmatch(text):
        raise ValidationFailed("invalid AddHumanUserRequest.TotpSecret: not base32")
    secret = text.upper().rstrip("=")
    try:
        raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    except (binascii.Error, ValueError):
        raise ValidationFailed("invalid AddHumanUserRequest.TotpSecret: not base32") from None
    assert len(raw) >= MIN_SECRET_BYTES  # noqa: S101 - 23 letters (the pattern) are 14 bytes
    return secret


def totp_step(now_ms: int) -> int:
    return now_ms // 1000 // TOTP_PERIOD_S


def totp_code(secret: str, step: int) -> str:
    """The code of ``step`` (what an authenticator app shows during it)."""
    return str(pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S).generate_otp(step))


def matching_totp_step(secret: str, code: str, now_ms: int) -> int | None:
    """The time step (now ±1) whose code ``code`` is, or None; compared in constant time.

    RFC 6238 over cryptography's HOTP (OpenSSL's HMAC, the seed decoded once): pyotp, which
    makes the seeds and URIs, decodes the seed again for every step, at twice the cost of
    a session's TOTP check. The tests check both against each other.
    """
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    hotp = HOTP(key, TOTP_DIGITS, SHA1(), enforce_key_length=False)  # noqa: S303 - RFC 6238
    given = code.encode()
    current = totp_step(now_ms)
    found = None
    for step in range(current - TOTP_SKEW, current + TOTP_SKEW + 1):
        if hmac.compare_digest(hotp.generate(step), given):
            found = step  # no early exit: every candidate is computed
    return found


def totp_uri(secret: str, account: str, issuer: str) -> str:
    """``otpauth://totp/<issuer>:<account>?secret=...&issuer=...`` for authenticator apps."""
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S)
    return totp.provisioning_uri(name=account, issuer_name=issuer)


def totp_issuer(org_domain: str) -> str:
    """The instance domain, from a generated org domain ``<slug>.<instance domain>``."""
    _, _, instance_domain = org_domain.partition(".")
    return instance_domain or org_domain


def register_totp(user: User | None, sealed_secret: str, now_ms: int) -> Change:
    """A new, unverified seed (replacing an unverified one); not a factor until verified."""
    user, human = _human(user)
    current = human.factors.totp
    if current is not None and current.verified:
        raise AlreadyExists("COMMAND-do9se", _ALREADY_READY)
    totp = Totp(sealed_secret=sealed_secret)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}added"), totp=totp)


def verify_totp_registration(user: User | None, secret: str, code: str, now_ms: int) -> Change:
    """A code of the registered seed makes TOTP ready; its step is used up (no replay).

    ``secret``: the registered seed, opened by the caller ("" when there is none).
    """
    user = existing(user, "COMMAND-3Mif9s", _NOT_EXISTING)
    human = user.human
    totp = human.factors.totp if human is not None else None
    if human is None or totp is None:
        raise NotFound("COMMAND-3Mif9s", _NOT_EXISTING)
    if totp.verified:
        raise FailedPrecondition("COMMAND-qx4ls", "Errors.Users.MFA.OTP.AlreadyReady")  # sic
    step = matching_totp_step(secret, code, now_ms) if secret else None
    if step is None:
        raise InvalidArgument("EVENT-8isk2", "Errors.User.MFA.OTP.InvalidCode")
    verified = replace(totp, verified=True, last_step=step)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}verified"), totp=verified)


def remove_totp(user: User | None, now_ms: int) -> Change:
    user, human = _human(user)
    if human.factors.totp is None:
        raise NotFound("COMMAND-Hd9sd", _NOT_EXISTING)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}removed"), totp=None)


def import_totp(change: Change, sealed_secret: str) -> Change:
    """A new human's imported seed (``totpSecret``): ready at once, as ZITADEL's import."""
    user = change.user
    if user.human is None:
        raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
    factors = replace(user.human.factors, totp=Totp(sealed_secret=sealed_secret, verified=True))
    events = (*change.events, UserEvent(f"{_OTP}added"), UserEvent(f"{_OTP}verified"))
    return Change(replace(user, human=replace(user.human, factors=factors)), events)


# -- OTP SMS / Email -----------------------------------------------------------------------


def add_otp_sms(user: User | None, now_ms: int) -> Change:
    user, human = _human(user)
    if human.factors.otp_sms:
        raise AlreadyExists("COMMAND-Ad3g2", _ALREADY_READY)
    if human.phone is None or not human.phone.verified:
        raise FailedPrecondition("COMMAND-Q54j2", _NOT_READY)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}sms.added"), otp_sms=True)


def remove_otp_sms(user: User | None, now_ms: int) -> Change:
    user, human = _human(user)
    if not human.factors.otp_sms:
        raise NotFound("COMMAND-Sr3h3", _NOT_EXISTING)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}sms.removed"), otp_sms=False)


def add_otp_email(user: User | None, now_ms: int) -> Change:
    user, human = _human(user)
    if human.factors.otp_email:
        raise AlreadyExists("COMMAND-MKL2s", _ALREADY_READY)
    if not human.email.verified:
        raise FailedPrecondition("COMMAND-KLJ2d", _NOT_READY)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}email.added"), otp_email=True)


def remove_otp_email(user: User | None, now_ms: int) -> Change:
    user, human = _human(user)
    if not human.factors.otp_email:
        raise NotFound("COMMAND-b312D", _NOT_EXISTING)
    return _with(user, human, now_ms, UserEvent(f"{_OTP}email.removed"), otp_email=False)


# -- recovery codes ------------------------------------------------------------------------


def check_recovery_code_count(count: int) -> None:
    """Before any code is drawn: 1..MAX_RECOVERY_CODES (ZITADEL COMMAND-7c0nx)."""
    if not 1 <= count <= MAX_RECOVERY_CODES:
        raise InvalidArgument("COMMAND-7c0nx", "Errors.User.RecoveryCodes.CountInvalid")


def set_recovery_codes(user: User | None, digests: tuple[str, ...], now_ms: int) -> Change:
    """A new set of codes (their keyed hashes) replaces the old one, used or not.

    ZITADEL appends up to its maximum; replacing is simpler to reason about for a user who
    lost the old sheet. A replaced set is announced as removed first.
    """
    check_recovery_code_count(len(digests))
    user, human = _human(user)
    events = [UserEvent(f"{_RECOVERY}added", {"count": len(digests)})]
    if human.factors.recovery_codes:
        events.insert(0, UserEvent(f"{_RECOVERY}removed"))
    factors = replace(human.factors, recovery_codes=digests)
    return changed(user, now_ms, tuple(events), human=replace(human, factors=factors))


def remove_recovery_codes(user: User | None, now_ms: int) -> Change:
    user, human = _human(user)
    if user.state == LOCKED:
        raise NotFound("COMMAND-d9u8q", "Errors.User.RecoveryCodes.Locked")  # sic, NotFound
    if not human.factors.recovery_codes:
        raise InvalidArgument("COMMAND-84rgg", "Errors.User.RecoveryCodes.NotAdded")
    return _with(user, human, now_ms, UserEvent(f"{_RECOVERY}removed"), recovery_codes=())


# -- what is ready -------------------------------------------------------------------------


def auth_method_types(user: User) -> list[str]:
    """ZITADEL's ``AuthenticationMethodType`` names of what the user can log in with now."""
    human = user.human
    if human is None:
        return []
    factors: SecondFactors = human.factors
    ready = [
        ("PASSWORD", bool(human.password_hash)),
        ("TOTP", factors.totp is not None and factors.totp.verified),
        ("OTP_SMS", factors.otp_sms),
        ("OTP_EMAIL", factors.otp_email),
        ("RECOVERY_CODE", bool(factors.recovery_codes)),
        ("PASSKEY", any(t.ready and t.kind == PASSKEY for t in factors.webauthn)),
        ("U2F", any(t.ready and t.kind == U2F for t in factors.webauthn)),
    ]
    return [METHOD_PREFIX + name for name, present in ready if present]
