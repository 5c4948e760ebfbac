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


class Factors(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    user: UserFactor | None = None
    password: CheckedFactor | None = None
    totp: CheckedFactor | None = None
    otp_sms: CheckedFactor | None = None
    otp_email: CheckedFactor | None = None
    recovery_code: CheckedFactor | None = None

    @property
    def second_factor_ms(self) -> int | None:
        """When a second factor was last checked (None: never), for the bearer rule."""
        times = [
            factor.verified_at_ms
            for factor in (self.totp, self.otp_sms, self.otp_email, self.recovery_code)
            if factor is not None
        ]
        return max(times) if times else None


class PendingCode(msgspec.Struct, frozen=True, kw_only=True):
    """An OTP challenge waiting for its check: the code's keyed hash and its expiry."""

    code_hash: str
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
