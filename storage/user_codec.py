"""User and organization records ⇄ Redis hash fields, and the argument lists of the scripts.

A user is one hash ``user:{U}``: scalar fields the scripts read (``state``, ``pw``,
``failed``, ``vv``, ``org``, ``rev``, ``seq``) and JSON for the rest (profile, email, ...).
The password hash is kept out of the JSON document, in ``pw`` only. So are the second
factors, which the check scripts read and change atomically: ``totp`` (the sealed seed),
``totp_ok`` ("1" once verified), ``totp_step`` (last accepted time step), ``otp_sms`` and
``otp_email`` ("1" when added), ``rc`` (the unused recovery codes' hashes, space-separated),
``failed_otp`` (failed second-factor checks), and as JSON ``webauthn`` (passkeys and U2F
keys, registered or pending) and ``pk_codes`` (passkey registration codes, as hashes).
Pure: no Redis here.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec.structs import replace

from actors.permissions import Grant
from actors.user_records import (
    Human,
    Machine,
    Org,
    RegistrationCode,
    SecondFactors,
    Totp,
    User,
    UserEvent,
    WebAuthnToken,
)
from actors.webauthn_tokens import UserKeys

_ENCODER = msgspec.json.Encoder()
_HUMAN = msgspec.json.Decoder(Human)
_MACHINE = msgspec.json.Decoder(Machine)
_GRANTS = msgspec.json.Decoder(tuple[Grant, ...])
_TOKENS = msgspec.json.Decoder(tuple[WebAuthnToken, ...])
_CODES = msgspec.json.Decoder(tuple[RegistrationCode, ...])


def text(value: bytes | str | None) -> str:
    """Replies are bytes (``decode_responses=False``); redis-py's types also allow str."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _decoded(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {text(key): text(value) for key, value in raw.items()}


def to_json(value: object) -> str:
    return _ENCODER.encode(value).decode()


def user_fields(user: User) -> dict[str, str]:
    """The hash of a user, without ``rev``/``seq`` (owned by the scripts)."""
    fields = {
        "id": user.id,
        "org": user.org_id,
        "username": user.username,
        "state": user.state,
        "ctime": str(user.creation_ms),
        "mtime": str(user.change_ms),
        "failed": str(user.failed_password_attempts),
        "failed_otp": str(user.failed_otp_attempts),
        "vv": str(user.view_version),
        "grants": to_json(user.grants),
    }
    if user.human is not None:
        fields["kind"] = "human"
        fields["human"] = to_json(replace(user.human, password_hash="", factors=SecondFactors()))
        if user.human.password_hash:
            fields["pw"] = user.human.password_hash
        fields.update(_factor_fields(user.human.factors))
    elif user.machine is not None:
        fields["kind"] = "machine"
        fields["machine"] = to_json(user.machine)
    return fields


def user_from_fields(raw: Mapping[bytes | str, bytes | str]) -> tuple[User, int] | None:
    """HGETALL → (user, rev), or None for a missing key."""
    if not raw:
        return None
    f = _decoded(raw)
    human = _HUMAN.decode(f["human"]) if "human" in f else None
    if human is not None:
        human = replace(human, password_hash=f.get("pw", ""), factors=_factors_from(f))
    user = User(
        id=f["id"],
        org_id=f["org"],
        username=f["username"],
        state=f["state"],
        creation_ms=int(f["ctime"]),
        change_ms=int(f["mtime"]),
        sequence=int(f.get("seq", 0)),
        failed_password_attempts=int(f.get("failed", 0)),
        failed_otp_attempts=int(f.get("failed_otp", 0)),
        view_version=int(f.get("vv", 0)),
        grants=_GRANTS.decode(f.get("grants", "[]")),
        human=human,
        machine=_MACHINE.decode(f["machine"]) if "machine" in f else None,
    )
    return user, int(f.get("rev", 0))


def _factor_fields(factors: SecondFactors) -> dict[str, str]:
    """Only the factors present: an absent field is "not registered" for the scripts."""
    fields: dict[str, str] = {}
    if factors.totp is not None:
        fields["totp"] = factors.totp.sealed_secret
        fields["totp_step"] = str(factors.totp.last_step)
        if factors.totp.verified:
            fields["totp_ok"] = "1"
    if factors.otp_sms:
        fields["otp_sms"] = "1"
    if factors.otp_email:
        fields["otp_email"] = "1"
    if factors.recovery_codes:
        fields["rc"] = " ".join(factors.recovery_codes)
    if factors.webauthn:
        fields["webauthn"] = to_json(factors.webauthn)
    if factors.passkey_codes:
        fields["pk_codes"] = to_json(factors.passkey_codes)
    return fields


def _factors_from(f: Mapping[str, str]) -> SecondFactors:
    totp = None
    if f.get("totp"):
        totp = Totp(
            sealed_secret=f["totp"],
            verified=f.get("totp_ok") == "1",
            last_step=int(f.get("totp_step") or 0),
        )
    return SecondFactors(
        totp=totp,
        otp_sms=f.get("otp_sms") == "1",
        otp_email=f.get("otp_email") == "1",
        recovery_codes=tuple(f.get("rc", "").split()),
        webauthn=_TOKENS.decode(f["webauthn"]) if f.get("webauthn") else (),
        passkey_codes=_CODES.decode(f["pk_codes"]) if f.get("pk_codes") else (),
    )


#: The hash fields a WebAuthn check reads (``user_keys_from``).
KEY_FIELDS = ("state", "kind", "webauthn")


def user_keys_from(values: list[bytes | str | None]) -> UserKeys | None:
    """HMGET of ``KEY_FIELDS`` → the user's keys, or None for a missing user."""
    state, kind, tokens = (text(value) for value in values)
    if not state:
        return None
    return UserKeys(
        state=state, human=kind == "human", tokens=_TOKENS.decode(tokens) if tokens else ()
    )


def org_fields(org: Org) -> dict[str, str]:
    """The hash of an organization, without ``seq`` (owned by the script)."""
    return {"id": org.id, "name": org.name, "domain": org.domain, "ctime": str(org.creation_ms)}


def org_from_fields(raw: Mapping[bytes | str, bytes | str]) -> Org | None:
    if not raw:
        return None
    f = _decoded(raw)
    return Org(
        id=f["id"],
        name=f["name"],
        domain=f["domain"],
        creation_ms=int(f["ctime"]),
        sequence=int(f.get("seq", 0)),
    )


def counted(items: list[str]) -> list[str]:
    """A list as script arguments: its length, then its items."""
    return [str(len(items)), *items]


def pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]


def event_args(events: tuple[UserEvent, ...]) -> list[str]:
    args = [str(len(events))]
    for event in events:
        args += [event.type, to_json(event.payload)]
    return args
