"""The session as the rules see it: immutable state reduced from events.

Times are integer milliseconds since the Unix epoch (``*_ms``); nothing here reads a clock.
"""

from __future__ import annotations

import msgspec


class UserAgent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the login UI told us about the browser; stored once, at creation."""

    fingerprint_id: str | None = None
    ip: str | None = None
    description: str | None = None
    header: dict[str, list[str]] = {}


class UserFactor(msgspec.Struct, frozen=True, kw_only=True):
    """The checked user. Names are a snapshot; reads refresh them from the user record."""

    id: str
    org_id: str
    verified_at_ms: int
    login_name: str = ""
    display_name: str = ""
    view_version: int = 0


class CheckedFactor(msgspec.Struct, frozen=True, kw_only=True):
    verified_at_ms: int


class WebAuthnFactor(CheckedFactor, frozen=True, kw_only=True):
    """A WebAuthn assertion: with ``user_verified`` a passkey ("passwordless"), else U2F."""

    user_verified: bool = False


class Factors(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    user: UserFactor | None = None
    password: CheckedFactor | None = None
    web_authn: WebAuthnFactor | None = None
    totp: CheckedFactor | None = None
    otp_sms: CheckedFactor | None = None
    otp_email: CheckedFactor | None = None
    recovery_code: CheckedFactor | None = None

    @property
    def second_factor_ms(self) -> int | None:
        """When a second factor was last checked (None: never), for the bearer rule."""
        times = [
            factor.verified_at_ms
            for factor in (
                self.web_authn,
                self.totp,
                self.otp_sms,
                self.otp_email,
                self.recovery_code,
            )
            if factor is not None
        ]
        return max(times) if times else None

    @property
    def passkey_ms(self) -> int | None:
        """When a user-verified WebAuthn assertion was checked: a full login on its own."""
        web_authn = self.web_authn
        return (
            web_authn.verified_at_ms if web_authn is not None and web_authn.user_verified else None
        )


class PendingCode(msgspec.Struct, frozen=True, kw_only=True):
    """An OTP challenge waiting for its check: the code's keyed hash and its expiry."""

    code_hash: str
    expires_ms: int


#: ``userVerificationRequirement`` as ZITADEL stores it (0 is never stored: refused).
USER_VERIFICATION = {1: "required", 2: "preferred", 3: "discouraged"}


class PendingWebAuthn(msgspec.Struct, frozen=True, kw_only=True):
    """A WebAuthn challenge waiting for its assertion.

    ``challenge`` and the credential ids are base64url; ``user_verification`` 1 required
    (passkeys only), 2 preferred, 3 discouraged. It lives until ``expires_ms`` (the timeout
    the options advertise), a new challenge, or a check of it, whatever its outcome.
    """

    challenge: str
    rp_id: str
    user_verification: int
    allowed_credentials: tuple[str, ...]
    expires_ms: int


class SessionState(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Everything the rules need to decide on a session; ``sequence`` counts its events."""

    id: str
    creation_ms: int
    change_ms: int
    sequence: int = 0
    creator_id: str = ""
    factors: Factors = Factors()
    metadata: dict[str, bytes] = {}
    user_agent: UserAgent | None = None
    lifetime_ms: int | None = None
    expiration_ms: int | None = None
    token_id: str = ""
    token_hash: str = ""
    terminated: bool = False
    otp_sms_challenge: PendingCode | None = None
    otp_email_challenge: PendingCode | None = None
    web_authn_challenge: PendingWebAuthn | None = None

    @property
    def user_id(self) -> str | None:
        return self.factors.user.id if self.factors.user else None

    @property
    def user_org_id(self) -> str | None:
        return self.factors.user.org_id if self.factors.user else None

    def is_expired(self, now_ms: int) -> bool:
        """Strict "expiration before now", as ZITADEL compares."""
        return self.expiration_ms is not None and self.expiration_ms < now_ms


class UserRef(msgspec.Struct, frozen=True, kw_only=True):
    """A user as resolved by the edge for a user check; the rules never look users up."""

    id: str
    org_id: str
    state: str
    login_name: str
    display_name: str
    preferred_language: str = ""
    view_version: int = 0

    @property
    def is_enabled(self) -> bool:
        """ZITADEL: enabled = active or initial; locked, inactive, deleted are not."""
        return self.state in ("USER_STATE_ACTIVE", "USER_STATE_INITIAL")
