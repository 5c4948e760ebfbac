"""IdP intents: one sign-in at an external identity provider, from start to its single use.

An intent is *started* when a login UI asks for the provider's authorization URL, becomes
*succeeded* (with the provider's identity) or *failed* when the provider calls back, and
*consumed* when a session check uses it — once, whichever session asks first (spec §4.4,
§15). These are the pure rules: the states, the order of the session check's refusals with
ZITADEL's error ids, and how long an intent lives. Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

from typing import Any

import msgspec

from actors.errors import FailedPrecondition, PermissionDenied, ServiceError, ValidationFailed
from actors.http_urls import MAX_URL_LENGTH, is_http_url

STARTED = "started"
SUCCEEDED = "succeeded"
FAILED = "failed"
CONSUMED = "consumed"

#: How long a started intent waits for the provider's callback (a person signing in).
START_TTL_MS = 600_000
#: How long a failed or consumed intent stays readable, so a late caller gets a clear error.
AFTER_USE_TTL_MS = 3_600_000


class Intent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One intent. Secrets (the PKCE verifier, the provider's tokens) are stored sealed."""

    id: str
    idp_id: str
    state: str = STARTED
    success_url: str
    failure_url: str
    #: Our callback URL as sent in the authorization request (the token request repeats it).
    redirect_uri: str
    nonce: str
    sealed_verifier: str = ""
    creation_ms: int
    # -- succeeded ---------------------------------------------------------------------------
    idp_user_id: str = ""
    idp_user_name: str = ""
    raw_information: dict[str, Any] = {}
    sealed_access_token: str = ""
    sealed_id_token: str = ""
    #: The user linked to (idp, idp user) when the provider answered, if any.
    user_id: str = ""
    succeeded_ms: int = 0
    expires_ms: int = 0
    # -- failed / consumed -------------------------------------------------------------------
    error: str = ""
    error_description: str = ""
    consumed_ms: int = 0
    session_id: str = ""


def invalid_token(error_id: str = "CRYPTO-CRYPTO") -> PermissionDenied:
    return PermissionDenied(error_id, "Errors.Intent.InvalidToken")


def not_succeeded() -> FailedPrecondition:
    return FailedPrecondition("COMMAND-Df4bw", "Errors.Intent.NotSucceeded")


def provider_removed() -> FailedPrecondition:
    """The intent's provider was deleted after it succeeded: it no longer signs anyone in."""
    return FailedPrecondition("IDP-removed", "Errors.IDPConfig.NotExisting")


def expired() -> FailedPrecondition:
    return FailedPrecondition("COMMAND-SAf42", "Errors.Intent.Expired")


def other_user() -> FailedPrecondition:
    return FailedPrecondition("COMMAND-O8xk3w", "Errors.Intent.OtherUser")


def expiry_ms(succeeded_ms: int, lifetime_ms: int, provider_expires_ms: int | None) -> int:
    """``SESSIOND_IDP_INTENT_LIFETIME`` after success, or earlier if the provider said so."""
    limit = succeeded_ms + lifetime_ms
    if provider_expires_ms is not None and provider_expires_ms < limit:
        return provider_expires_ms
    return limit


def check_for_session(
    intent: Intent | None, session_user_id: str, link_owner: str | None, now_ms: int
) -> ServiceError | None:
    """Spec §4.4 steps 3-5, after the token proved possession (step 2).

    ``link_owner``: the user linked to (intent's idp, intent's idp user) now — a link added
    after the provider answered counts (item 13). None if the intent may be used.
    """
    if intent is None or intent.state != SUCCEEDED:
        return not_succeeded()
    if intent.expires_ms <= now_ms:
        return expired()
    owner = intent.user_id or link_owner
    if owner != session_user_id:
        return other_user()
    return None


def check_retrievable(intent: Intent | None, now_ms: int) -> ServiceError | None:
    """RetrieveIdentityProviderIntent: a succeeded intent within its lifetime."""
    if intent is None or intent.state != SUCCEEDED:
        return FailedPrecondition("IDP-Hk38e", "Errors.Intent.NotSucceeded")
    if intent.expires_ms <= now_ms:
        return expired()
    return None


def validate_redirect_url(name: str, url: str) -> None:
    """An absolute http(s) URL of at most 2048 characters, without credentials or fragment.

    ZITADEL accepts any URI reference; a login UI always sends an absolute URL, and a
    redirect target that is not one is almost always a bug (or an open-redirect attempt).
    """
    field = f"invalid StartIdentityProviderIntentRequest.Urls.{name}"
    if not 1 <= len(url) <= MAX_URL_LENGTH:
        raise ValidationFailed(f"{field}: value length must be between 1 and 2048 runes")
    if not is_http_url(url):
        raise ValidationFailed(f"{field}: value must be an absolute http(s) URL")
