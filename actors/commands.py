"""What callers ask of a session: the actor's mailbox messages, named after ZITADEL's RPCs.

Commands are already validated for shape by the HTTP edge; the rules in ``machine`` check
everything that depends on state.
"""

from __future__ import annotations

import msgspec

from actors.model import AgentDetails, Location, PendingWebAuthn, SignOn, UserAgent, UserRef


class UserCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one of ``user_id`` / ``login_name``; the edge resolves it to a ``UserRef``."""

    user_id: str | None = None
    login_name: str | None = None


class IntentCheck(msgspec.Struct, frozen=True, kw_only=True):
    """A succeeded IdP intent and the token that proves possession of it."""

    intent_id: str
    token: str


class Checks(msgspec.Struct, frozen=True, kw_only=True):
    """The checks of one request, run in ZITADEL's fixed order (the field order here)."""

    user: UserCheck | None = None
    password: str | None = None
    idp_intent: IntentCheck | None = None
    #: ``credentialAssertionData``: the browser's ``PublicKeyCredential.toJSON()``, as JSON.
    web_authn: bytes | None = None
    totp: str | None = None
    otp_sms: str | None = None
    otp_email: str | None = None
    recovery_code: str | None = None

    @property
    def empty(self) -> bool:
        return self == _NO_CHECKS

    @property
    def second_factors(self) -> bool:
        """Whether any check beyond user and password is asked for."""
        return not (
            self.idp_intent is None
            and self.web_authn is None
            and self.totp is None
            and self.otp_sms is None
            and self.otp_email is None
            and self.recovery_code is None
        )


_NO_CHECKS = Checks()


class OtpChallenge(msgspec.Struct, frozen=True, kw_only=True):
    """An OTP challenge request: return the code in the response, or send it.

    ``url_template`` (e-mail only) is the link of the mail, already validated.
    """

    return_code: bool = False
    url_template: str | None = None


class WebAuthnChallenge(msgspec.Struct, frozen=True, kw_only=True):
    """A WebAuthn challenge request, validated by the edge.

    ``domain``: the relying-party id; ``user_verification`` 1 required, 2 preferred,
    3 discouraged.
    """

    domain: str
    user_verification: int


class Challenges(msgspec.Struct, frozen=True, kw_only=True):
    web_authn: WebAuthnChallenge | None = None
    otp_sms: OtpChallenge | None = None
    otp_email: OtpChallenge | None = None

    @property
    def any(self) -> bool:
        return not (self.web_authn is None and self.otp_sms is None and self.otp_email is None)


class SignOnReport(msgspec.Struct, frozen=True, kw_only=True):
    """A PingOne create or update (``PUT /sessions/me``), validated by the edge.

    ``sign_on`` is None for an anonymous session; ``idle_timeout_ms`` None keeps the
    current one (on create: the default); ``st_token_hash`` None keeps the current token.
    """

    active_ms: int
    location: Location
    idle_timeout_ms: int | None = None
    sign_on: SignOn | None = None
    agent: AgentDetails | None = None
    st_token_hash: str | None = None


class CreateSession(msgspec.Struct, frozen=True, kw_only=True, tag="create"):
    checks: Checks = Checks()
    metadata: dict[str, bytes] = {}
    user_agent: UserAgent | None = None
    lifetime_ms: int | None = None
    challenges: Challenges = Challenges()
    #: Set by the PingOne facade: no ZITADEL token is issued, the report is stored.
    report: SignOnReport | None = None


class SetSession(msgspec.Struct, frozen=True, kw_only=True, tag="set"):
    checks: Checks = Checks()
    metadata: dict[str, bytes] = {}
    lifetime_ms: int | None = None
    challenges: Challenges = Challenges()
    report: SignOnReport | None = None
    #: Set when the request named the session by its PingOne token (``Cookie: ST``): the
    #: token's keyed hash, which must still be the session's when the actor runs.
    presented_st_hash: str | None = None


class DeleteSession(msgspec.Struct, frozen=True, kw_only=True, tag="delete"):
    session_token: str | None = None
    #: Why, when the service itself ends it (``evicted``: over the per-user cap).
    reason: str = ""
    presented_st_hash: str | None = None


class TouchSession(msgspec.Struct, frozen=True, kw_only=True, tag="touch"):
    """A read with the PingOne session token: activity, recorded at most once per granule."""

    presented_st_hash: str | None = None


class ResetAuthentication(msgspec.Struct, frozen=True, kw_only=True, tag="reset"):
    """PingOne's SSO logout: every factor but the user is cleared, the session stays."""

    presented_st_hash: str | None = None


Command = CreateSession | SetSession | DeleteSession | TouchSession | ResetAuthentication


class IssuedCode(msgspec.Struct, frozen=True, kw_only=True):
    """A fresh OTP challenge code: the plain code (returned or sent) and its keyed hash."""

    plain: str
    code_hash: str
    expires_ms: int


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    """Facts gathered by I/O before deciding: the user, verified credentials, drawn codes."""

    user: UserRef | None = None
    password_verified: bool = False
    #: The second-factor checks (``Checks`` field names) verified against the user.
    verified: frozenset[str] = frozenset()
    #: The verified WebAuthn assertion had the user-verification flag.
    web_authn_user_verified: bool = False
    web_authn_challenge: PendingWebAuthn | None = None
    otp_sms_code: IssuedCode | None = None
    otp_email_code: IssuedCode | None = None
