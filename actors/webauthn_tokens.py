"""Passkeys and U2F keys: their registration, their use, and which ones a challenge offers.

Pure transitions over a user's ``WebAuthnToken``s. The WebAuthn ceremonies themselves (the
options, the signature checks) are done by the caller with py_webauthn; here arrive their
results: a challenge to remember, a verified credential, a new sign count. Event types are
ZITADEL's (``user.human.passwordless.token.*`` for passkeys, ``user.human.mfa.u2f.token.*``
for U2F); no payload carries a challenge, a key or a code.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
from msgspec.structs import replace

from actors.codes import NS_PER_MS
from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
)
from actors.user_records import (
    PASSKEY,
    U2F,
    Change,
    Human,
    RegistrationCode,
    User,
    UserEvent,
    WebAuthnToken,
    changed,
    existing,
)

#: A registration must be verified within the timeout its options advertise.
REGISTRATION_TTL_MS = 300_000
#: ZITADEL's ``PasswordlessInitCode`` generator: valid for an hour.
CODE_TTL_MS = 3_600_000
#: Bounds of one user's record: registered keys, open registrations, open codes.
MAX_TOKENS = 20
MAX_PENDING = 5
MAX_CODES = 5
#: ``userVerificationRequirement`` REQUIRED: the passkey flow.
REQUIRED = 1

_PREFIX = {PASSKEY: "user.human.passwordless.token.", U2F: "user.human.mfa.u2f.token."}
_CODE = "user.human.passwordless.initialization.code."


class RegisteredKey(msgspec.Struct, frozen=True, kw_only=True):
    """What a verified registration yields (py_webauthn's ``VerifiedRegistration``)."""

    credential_id: str
    public_key: str
    sign_count: int
    aaguid: str = ""


def _human(user: User | None) -> tuple[User, Human]:
    user = existing(user, "QUERY-Dfbg2")
    if user.human is None:
        raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
    return user, user.human


def _with_tokens(
    user: User,
    human: Human,
    now_ms: int,
    events: tuple[UserEvent, ...],
    tokens: tuple[WebAuthnToken, ...],
    error: ServiceError | None = None,
) -> Change:
    factors = replace(human.factors, webauthn=tokens)
    change = changed(user, now_ms, events, human=replace(human, factors=factors))
    return Change(change.user, change.events, error)


def _token_ref(token: WebAuthnToken) -> dict[str, str]:
    return {"webAuthNTokenId": token.id}


# -- registration ----------------------------------------------------------------------------


def begin_registration(
    user: User | None,
    *,
    token_id: str,
    kind: str,
    rp_id: str,
    challenge: str,
    attachment: str,
    by_code: bool,
    now_ms: int,
) -> Change:
    """A pending registration; expired ones are dropped, the oldest beyond ``MAX_PENDING``."""
    user, human = _human(user)
    kept = [t for t in human.factors.webauthn if t.ready or t.expires_ms >= now_ms]
    if sum(1 for t in kept if t.ready) >= MAX_TOKENS:
        raise ResourceExhausted("COMMAND-wa3Max", "Errors.User.WebAuthN.TooMany")
    pending = [t for t in kept if not t.ready]
    if len(pending) >= MAX_PENDING:
        kept.remove(min(pending, key=lambda t: t.expires_ms))
    token = WebAuthnToken(
        id=token_id,
        kind=kind,
        rp_id=rp_id,
        creation_ms=now_ms,
        challenge=challenge,
        expires_ms=now_ms + REGISTRATION_TTL_MS,
        by_code=by_code,
        attachment=attachment,
    )
    event = UserEvent(f"{_PREFIX[kind]}added", {**_token_ref(token), "rpID": rp_id})
    return _with_tokens(user, human, now_ms, (event,), (*kept, token))


def pending_registration(user: User | None, kind: str, token_id: str, now_ms: int) -> WebAuthnToken:
    """The registration a verification answers; its errors in the order a client meets them."""
    _, human = _human(user)
    token = _find(human, kind, token_id)
    if token.ready:
        raise FailedPrecondition("COMMAND-wa3Rdy", "Errors.User.WebAuthN.AlreadyReady")
    if not token.challenge or token.expires_ms < now_ms:
        raise FailedPrecondition("COMMAND-wa3Exp", "Errors.User.WebAuthN.ChallengeExpired")
    return token


def finish_registration(
    user: User | None,
    *,
    kind: str,
    token_id: str,
    name: str,
    result: RegisteredKey | ServiceError,
    now_ms: int,
) -> Change:
    """The registration's outcome; either way its challenge is used up.

    A failure (``result`` an error) keeps the registration with its challenge spent (so a
    retry is told so, until it expires) and raises the error; so does a credential the user
    has registered already.
    """
    pending = pending_registration(user, kind, token_id, now_ms)
    user, human = _human(user)
    others = tuple(t for t in human.factors.webauthn if t.id != pending.id)
    if not isinstance(result, ServiceError) and any(
        t.ready and t.credential_id == result.credential_id for t in others
    ):
        result = AlreadyExists("COMMAND-wa3Dup", "Errors.User.WebAuthN.AlreadyRegistered")
    if isinstance(result, ServiceError):
        spent = replace(pending, challenge="")
        return _with_tokens(user, human, now_ms, (), (*others, spent), error=result)
    ready = replace(
        pending,
        ready=True,
        name=name,
        credential_id=result.credential_id,
        public_key=result.public_key,
        sign_count=result.sign_count,
        aaguid=result.aaguid,
        challenge="",
        expires_ms=0,
    )
    event = UserEvent(f"{_PREFIX[kind]}verified", {**_token_ref(ready), "webAuthNTokenName": name})
    return _with_tokens(user, human, now_ms, (event,), (*others, ready))


def remove_token(user: User | None, kind: str, token_id: str, now_ms: int) -> Change:
    user, human = _human(user)
    token = _find(human, kind, token_id)
    rest = tuple(t for t in human.factors.webauthn if t.id != token.id)
    event = UserEvent(f"{_PREFIX[kind]}removed", _token_ref(token))
    return _with_tokens(user, human, now_ms, (event,), rest)


def _find(human: Human, kind: str, token_id: str) -> WebAuthnToken:
    for token in human.factors.webauthn:
        if token.id == token_id and token.kind == kind:
            return token
    raise NotFound("COMMAND-wa3Nf", "Errors.User.WebAuthN.NotFound")


def registered(user: User, kind: str) -> list[WebAuthnToken]:
    """The user's tokens of ``kind``, ready or not (ListPasskeys shows both)."""
    human = user.human
    return [t for t in human.factors.webauthn if t.kind == kind] if human else []


# -- use -------------------------------------------------------------------------------------


def offered(user: User, user_verification: int) -> list[WebAuthnToken]:
    """What a session challenge offers: REQUIRED only passkeys, else passkeys and U2F keys."""
    human = user.human
    if human is None:
        return []
    return [
        t
        for t in human.factors.webauthn
        if t.ready and (t.kind == PASSKEY or user_verification != REQUIRED)
    ]


def token_of_credential(user: User, credential_id: str) -> WebAuthnToken | None:
    human = user.human
    return ready_token(human.factors.webauthn, credential_id) if human is not None else None


def ready_token(tokens: tuple[WebAuthnToken, ...], credential_id: str) -> WebAuthnToken | None:
    """The registered key with ``credential_id`` among ``tokens``, if any."""
    for token in tokens:
        if token.ready and token.credential_id == credential_id:
            return token
    return None


class UserKeys(msgspec.Struct, frozen=True, kw_only=True):
    """What a WebAuthn check reads of a user: its state, whether human, and its keys."""

    state: str
    human: bool
    tokens: tuple[WebAuthnToken, ...] = ()


def is_clone(stored: int, new: int) -> bool:
    """W3C WebAuthn §7.2 step 21: a counter in use must grow; 0 means "no counter"."""
    return (new != 0 or stored != 0) and new <= stored


def clone_warning() -> InvalidArgument:
    return InvalidArgument("WEBAU-4M90s", "Errors.User.WebAuthN.CloneWarning")


def record_use(user: User | None, token_id: str, sign_count: int, now_ms: int) -> Change:
    """A successful assertion: its sign count is stored; one that went back is a clone.

    A clone is recorded (``*.token.clone.detected``) and refused; the count stays.
    """
    user, human = _human(user)
    token = next((t for t in human.factors.webauthn if t.id == token_id and t.ready), None)
    if token is None:
        raise FailedPrecondition("COMMAND-Aej7i", "Errors.User.WebAuthN.NotFound")
    prefix = _PREFIX[token.kind]
    if is_clone(token.sign_count, sign_count):
        event = UserEvent(f"{prefix}clone.detected", {**_token_ref(token), "signCount": sign_count})
        return Change(replace(user, change_ms=now_ms), (event,), clone_warning())
    used = replace(token, sign_count=sign_count)
    tokens = tuple(used if t.id == token.id else t for t in human.factors.webauthn)
    event = UserEvent(f"{prefix}signcount.changed", {**_token_ref(token), "signCount": sign_count})
    factors = replace(human.factors, webauthn=tokens)
    return changed(user, now_ms, (event,), human=replace(human, factors=factors))


# -- registration codes ----------------------------------------------------------------------


def add_registration_code(
    user: User | None, code_id: str, code_hash: str, now_ms: int, *, returned: bool
) -> Change:
    """A new code (its keyed hash); expired ones are dropped, the oldest beyond ``MAX_CODES``."""
    user, human = _human(user)
    codes = [c for c in human.factors.passkey_codes if c.expires_ms >= now_ms]
    if len(codes) >= MAX_CODES:
        codes.remove(min(codes, key=lambda c: c.expires_ms))
    code = RegistrationCode(id=code_id, code_hash=code_hash, expires_ms=now_ms + CODE_TTL_MS)
    payload: dict[str, object] = {"id": code_id, "expiry": CODE_TTL_MS * NS_PER_MS}
    if returned:
        payload["codeReturned"] = True
    factors = replace(human.factors, passkey_codes=(*codes, code))
    event = UserEvent(f"{_CODE}added", payload)
    return changed(user, now_ms, (event,), human=replace(human, factors=factors))


def use_registration_code(
    user: User | None, code_id: str, matches: Callable[[str], bool], now_ms: int
) -> Change:
    """The code is right and current: it is used up. Else the failure is recorded and raised."""
    user, human = _human(user)
    code = next((c for c in human.factors.passkey_codes if c.id == code_id), None)
    if code is None or code.expires_ms < now_ms or not matches(code.code_hash):
        event = UserEvent(f"{_CODE}check.failed", {"id": code_id})
        error = InvalidArgument("COMMAND-Dhz8i", "Errors.User.Code.Invalid")
        return Change(replace(user, change_ms=now_ms), (event,), error)
    rest = tuple(c for c in human.factors.passkey_codes if c.id != code_id)
    factors = replace(human.factors, passkey_codes=rest)
    event = UserEvent(f"{_CODE}check.succeeded", {"id": code_id})
    return changed(user, now_ms, (event,), human=replace(human, factors=factors))
