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


class AgentDetails(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A raw user agent and what the parser made of it: parsed once, when it is written.

    Empty strings where the parser found nothing; versions are ``major.minor`` when known.
    """

    raw: str
    browser_name: str = ""
    browser_version: str = ""
    os_name: str = ""
    os_version: str = ""
    device_type: str = ""


class SignOnMethod(msgspec.Struct, frozen=True, kw_only=True):
    """One authenticator of a reported sign-on (PingOne ``withAuthenticator.<name>``)."""

    at_ms: int
    policy_id: str
    policy_type: str


class SignOn(msgspec.Struct, frozen=True, kw_only=True):
    """The last sign-on as the sign-on flow reported it (PingOne ``lastSignOn``).

    Stored as reported: it records what happened elsewhere and checks no factor here.
    """

    remote_ip: str
    authenticators: tuple[str, ...] = ()
    methods: dict[str, SignOnMethod] = {}

    @property
    def latest(self) -> tuple[str, SignOnMethod] | None:
        """The authenticator completed last (ties: the first named), or None."""
        best: tuple[str, SignOnMethod] | None = None
        for name, method in self.methods.items():
            if best is None or method.at_ms > best[1].at_ms:
                best = (name, method)
        return best


class Location(msgspec.Struct, frozen=True, kw_only=True):
    at_ms: int
    remote_ip: str


#: PingOne keeps the last five locations of a session, newest first.
MAX_LOCATIONS = 5


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
    #: A succeeded IdP intent: the identity provider authenticated the user.
    intent: CheckedFactor | None = None
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

    @property
    def intent_ms(self) -> int | None:
        """When an IdP intent was checked: the provider's sign-in is a full login too."""
        return self.intent.verified_at_ms if self.intent is not None else None


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
    #: The end set by ``lifetime`` alone; ``expires_ms`` is the effective end.
    expiration_ms: int | None = None
    token_id: str = ""
    token_hash: str = ""
    terminated: bool = False
    otp_sms_challenge: PendingCode | None = None
    otp_email_challenge: PendingCode | None = None
    web_authn_challenge: PendingWebAuthn | None = None
    #: Last user activity (PingOne ``activeAt``); None: never reported, the last write counts.
    active_ms: int | None = None
    #: Idle timeout: the session ends ``idle_timeout_ms`` after its last activity.
    idle_timeout_ms: int | None = None
    sign_on: SignOn | None = None
    locations: tuple[Location, ...] = ()
    agent: AgentDetails | None = None
    #: Keyed hash of the PingOne session token (cookie ``ST``); "" = none was given.
    st_token_hash: str = ""

    @property
    def last_active_ms(self) -> int:
        return self.active_ms if self.active_ms is not None else self.change_ms

    @property
    def expires_ms(self) -> int | None:
        """The effective end: the earlier of the lifetime's end and the idle timeout's."""
        # read on every index, summary and expiry decision: plain branches, no lists
        end = self.expiration_ms
        idle = self.idle_timeout_ms
        if not idle:
            return end
        idle_end = self.last_active_ms + idle
        return idle_end if end is None or idle_end < end else end

    @property
    def user_id(self) -> str | None:
        return self.factors.user.id if self.factors.user else None

    @property
    def user_org_id(self) -> str | None:
        return self.factors.user.org_id if self.factors.user else None

    def is_expired(self, now_ms: int) -> bool:
        """Strict "expiration before now", as ZITADEL compares."""
        expires = self.expires_ms
        return expires is not None and expires < now_ms


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
