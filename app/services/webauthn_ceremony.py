"""The WebAuthn ceremonies, over py_webauthn: options to send, responses to verify.

The relying party is per request (the ``domain`` a client names, as in ZITADEL); the origins
an assertion may come from are configured (``SESSIOND_WEBAUTHN_ORIGINS``). Anything a
client sends that py_webauthn cannot parse or verify becomes a 400 with ZITADEL's id, never
a 500: these bytes come from the outside. CPU only, no I/O.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import msgspec
import webauthn
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_authenticator_data,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from actors.errors import FailedPrecondition, InvalidArgument
from actors.model import USER_VERIFICATION, PendingWebAuthn
from actors.user_records import PASSKEY
from actors.webauthn_tokens import REGISTRATION_TTL_MS, REQUIRED, RegisteredKey

#: 256 bits: far beyond the 16 bytes WebAuthn asks for.
CHALLENGE_BYTES = 32
#: The ``timeout`` of every options object (ms); also how long a challenge is accepted.
TIMEOUT_MS = REGISTRATION_TTL_MS
_ATTACHMENT = {
    "PASSKEY_AUTHENTICATOR_PLATFORM": AuthenticatorAttachment.PLATFORM,
    "PASSKEY_AUTHENTICATOR_CROSS_PLATFORM": AuthenticatorAttachment.CROSS_PLATFORM,
}


class VerifiedAssertion(msgspec.Struct, frozen=True, kw_only=True):
    credential_id: str
    sign_count: int
    user_verified: bool


def attachment_of(authenticator: str) -> str:
    """``authenticatorAttachment`` of a RegisterPasskey ``authenticator`` ("" if any)."""
    attachment = _ATTACHMENT.get(authenticator)
    return attachment.value if attachment is not None else ""


def new_challenge() -> str:
    return bytes_to_base64url(secrets.token_bytes(CHALLENGE_BYTES))


def _options(options: object) -> dict[str, Any]:
    """py_webauthn's options as the JSON a browser parses (``{"publicKey": {...}}``)."""
    return {"publicKey": json.loads(webauthn.options_to_json(options))}  # type: ignore[arg-type]


def request_options(pending: PendingWebAuthn) -> dict[str, Any]:
    """``publicKeyCredentialRequestOptions`` of a session's challenge (seed 001's shape)."""
    options = webauthn.generate_authentication_options(
        rp_id=pending.rp_id,
        challenge=base64url_to_bytes(pending.challenge),
        timeout=TIMEOUT_MS,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential))
            for credential in pending.allowed_credentials
        ],
        user_verification=UserVerificationRequirement(USER_VERIFICATION[pending.user_verification]),
    )
    return _options(options)


def creation_options(
    *,
    kind: str,
    rp_id: str,
    rp_name: str,
    challenge: str,
    user_id: str,
    user_name: str,
    display_name: str,
    exclude: list[str],
    authenticator: str = "",
) -> dict[str, Any]:
    """``publicKeyCredentialCreationOptions`` of a passkey or a U2F key.

    A passkey is discoverable and verifies its user; a U2F key needs neither.
    """
    if kind == PASSKEY:
        selection = AuthenticatorSelectionCriteria(
            authenticator_attachment=_ATTACHMENT.get(authenticator),
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
    else:
        selection = AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED,
            user_verification=UserVerificationRequirement.DISCOURAGED,
        )
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name=rp_name,
        user_id=user_id.encode(),
        user_name=user_name,
        user_display_name=display_name or user_name,
        challenge=base64url_to_bytes(challenge),
        timeout=TIMEOUT_MS,
        authenticator_selection=selection,
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(credential))
            for credential in exclude
        ],
    )
    return _options(options)


def check_rp_id(rp_id: str, origins: tuple[str, ...]) -> None:
    """The RP id must be an accepted origin's host or a parent domain of it (W3C §5.1.3).

    Else a key would be bound to a domain no accepted page can use, or that another
    site's pages could: refused with 400.
    """
    rp = rp_id.lower()
    for origin in origins:
        host = (urlsplit(origin).hostname or "").lower()
        if host == rp or (rp.count(".") >= 1 and host.endswith("." + rp)):
            return
    raise InvalidArgument("WEBAU-rpId0", "Errors.User.WebAuthN.RelyingPartyInvalid")


def _origins(origins: tuple[str, ...]) -> list[str]:
    if not origins:
        raise FailedPrecondition("WEBAU-noOrigin", "Errors.User.WebAuthN.NoOrigins")
    return list(origins)


def verify_registration(
    credential: bytes,
    *,
    kind: str,
    challenge: str,
    rp_id: str,
    origins: tuple[str, ...],
) -> RegisteredKey | InvalidArgument:
    """The new credential, or the error to report (returned: the registration is used up)."""
    allowed = _origins(origins)
    try:
        _strict_base64url(msgspec.json.decode(credential))
        verified = webauthn.verify_registration_response(
            credential=parse_registration_credential_json(credential.decode()),
            expected_challenge=base64url_to_bytes(challenge),
            expected_rp_id=rp_id,
            expected_origin=allowed,
            require_user_verification=kind == PASSKEY,
        )
    except Exception:  # client bytes: whatever py_webauthn raises is a 400
        return InvalidArgument("WEBAU-sKf8s", "Errors.User.WebAuthN.CreateCredentialFailed")
    return RegisteredKey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        aaguid=verified.aaguid,
    )


def parse_assertion(assertion: bytes) -> AuthenticationCredential:
    """The assertion's structure (before any key is looked up), or WEBAU-ADgv4.

    Its parts are parsed by the verification; only a failing one is looked at again, to
    tell a malformed assertion from a wrong one (``verify_assertion``).
    """
    try:
        return parse_authentication_credential_json(assertion.decode())
    except Exception:  # client bytes: whatever py_webauthn raises is a 400
        raise malformed_assertion() from None


def _well_formed(assertion: bytes) -> bool:
    """Strict base64url everywhere, and client data and authenticator data that parse."""
    try:
        _strict_base64url(msgspec.json.decode(assertion))
        parsed = parse_authentication_credential_json(assertion.decode())
        parse_client_data_json(parsed.response.client_data_json)
        parse_authenticator_data(parsed.response.authenticator_data)
    except Exception:  # client bytes: whatever py_webauthn raises is a 400
        return False
    return True


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_BINARY_FIELDS = (
    "clientDataJSON",
    "authenticatorData",
    "signature",
    "userHandle",
    "attestationObject",
)


def _strict_base64url(raw: dict[str, Any]) -> None:
    """py_webauthn's decoder skips characters outside the alphabet; here they are errors."""
    response = raw.get("response")
    values = [raw.get("rawId"), raw.get("id")]
    if isinstance(response, dict):
        values += [response.get(name) for name in _BINARY_FIELDS]
    for value in values:
        if isinstance(value, str) and not _BASE64URL.fullmatch(value):
            raise ValueError("not base64url")


def malformed_assertion() -> InvalidArgument:
    return InvalidArgument("WEBAU-ADgv4", "Errors.User.WebAuthN.ValidateLoginFailed")


def credential_id(assertion: AuthenticationCredential) -> str:
    return bytes_to_base64url(assertion.raw_id)


def user_handle_matches(assertion: AuthenticationCredential, user_id: str) -> bool:
    """W3C §7.2 step 6: a user handle, when sent, is the id the key was registered for."""
    handle = assertion.response.user_handle
    return not handle or hmac.compare_digest(handle, user_id.encode())


def verify_assertion(
    assertion: AuthenticationCredential,
    *,
    raw: bytes,
    pending: PendingWebAuthn,
    public_key: str,
    origins: tuple[str, ...],
) -> VerifiedAssertion:
    """Challenge, RP id, origin, flags and signature; the sign count is the caller's rule.

    A REQUIRED challenge refuses an assertion without the user-verification flag.
    """
    allowed = _origins(origins)
    try:
        verified = webauthn.verify_authentication_response(
            credential=assertion,
            expected_challenge=base64url_to_bytes(pending.challenge),
            expected_rp_id=pending.rp_id,
            expected_origin=allowed,
            credential_public_key=base64url_to_bytes(public_key),
            credential_current_sign_count=0,  # compared by the caller, to tell a clone apart
            require_user_verification=pending.user_verification == REQUIRED,
        )
    except Exception:  # client bytes: whatever py_webauthn raises is a 400
        if not _well_formed(raw):
            raise malformed_assertion() from None
        raise InvalidArgument("WEBAU-3M9si", "Errors.User.WebAuthN.ValidateLoginFailed") from None
    return VerifiedAssertion(
        credential_id=bytes_to_base64url(verified.credential_id),
        sign_count=verified.new_sign_count,
        user_verified=verified.user_verified,
    )
