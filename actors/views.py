"""The session as clients see it (ZITADEL's ``Session`` message), rendered from state.

Rendering is pure. ``UserView`` carries what ZITADEL resolves at read time from the user: the
preferred login name, display name and organization, and when the password last changed —
a password factor checked before that change is not shown (spec §2.2).
"""

from __future__ import annotations

import base64

import msgspec

from actors.model import CheckedFactor, SessionState, UserAgent
from actors.timefmt import rfc3339_ms


class UserView(msgspec.Struct, frozen=True, kw_only=True):
    """The read-time facts of a user that sessions show; ``version`` changes when they do."""

    id: str
    org_id: str
    login_name: str
    display_name: str
    state: str
    version: int = 0
    password_changed_ms: int = 0
    #: A second factor (TOTP verified, OTP SMS/e-mail, recovery codes, a passkey or U2F key)
    #: is ready: a session token counts as a bearer only with a second factor checked (§7).
    second_factor: bool = False


class _Wire(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    pass


class VerifiedFactor(_Wire, kw_only=True):
    verified_at: str


class WebAuthNFactorView(_Wire, kw_only=True):
    verified_at: str
    user_verified: bool = False


class UserFactorView(_Wire, kw_only=True):
    verified_at: str
    id: str
    login_name: str = ""
    display_name: str = ""
    organization_id: str = ""


class FactorsView(_Wire, kw_only=True):
    user: UserFactorView | None = None
    password: VerifiedFactor | None = None
    web_auth_n: WebAuthNFactorView | None = None
    intent: VerifiedFactor | None = None
    totp: VerifiedFactor | None = None
    otp_sms: VerifiedFactor | None = None
    otp_email: VerifiedFactor | None = None
    recovery_code: VerifiedFactor | None = None


class HeaderValues(_Wire, kw_only=True):
    values: list[str] = []


class UserAgentView(_Wire, kw_only=True):
    fingerprint_id: str | None = None
    ip: str | None = None
    description: str | None = None
    header: dict[str, HeaderValues] = {}


class SessionView(_Wire, kw_only=True):
    id: str
    creation_date: str
    change_date: str
    sequence: str
    factors: FactorsView | None = None
    metadata: dict[str, str] = {}
    user_agent: UserAgentView | None = None
    expiration_date: str | None = None


def render(state: SessionState, user: UserView | None = None) -> SessionView:
    return SessionView(
        id=state.id,
        creation_date=rfc3339_ms(state.creation_ms),
        change_date=rfc3339_ms(state.change_ms),
        sequence=str(state.sequence),
        factors=_factors(state, user),
        metadata={k: base64.b64encode(v).decode() for k, v in state.metadata.items()},
        user_agent=_user_agent(state),
        expiration_date=rfc3339_ms(state.expires_ms) if state.expires_ms else None,
    )


def _factors(state: SessionState, user: UserView | None) -> FactorsView | None:
    checked = state.factors.user
    if checked is None:
        return None  # ZITADEL omits factors entirely until a user is checked
    current = user if user is not None and user.id == checked.id else None
    user_view = UserFactorView(
        verified_at=rfc3339_ms(checked.verified_at_ms),
        id=checked.id,
        login_name=current.login_name if current else checked.login_name,
        display_name=current.display_name if current else checked.display_name,
        organization_id=current.org_id if current else checked.org_id,
    )
    password = state.factors.password
    changed_ms = current.password_changed_ms if current else 0
    password_view = (
        VerifiedFactor(verified_at=rfc3339_ms(password.verified_at_ms))
        if password is not None and password.verified_at_ms >= changed_ms
        else None
    )
    factors = state.factors
    web_authn = factors.web_authn
    return FactorsView(
        user=user_view,
        password=password_view,
        web_auth_n=WebAuthNFactorView(
            verified_at=rfc3339_ms(web_authn.verified_at_ms), user_verified=web_authn.user_verified
        )
        if web_authn is not None
        else None,
        intent=_verified(factors.intent),
        totp=_verified(factors.totp),
        otp_sms=_verified(factors.otp_sms),
        otp_email=_verified(factors.otp_email),
        recovery_code=_verified(factors.recovery_code),
    )


def _verified(factor: CheckedFactor | None) -> VerifiedFactor | None:
    return VerifiedFactor(verified_at=rfc3339_ms(factor.verified_at_ms)) if factor else None


_NO_USER_AGENT = UserAgent()


def _user_agent(state: SessionState) -> UserAgentView | None:
    ua = state.user_agent
    if ua is None or ua == _NO_USER_AGENT:
        return None  # would render as an all-default UserAgentView
    return UserAgentView(
        fingerprint_id=ua.fingerprint_id,
        ip=ua.ip,
        description=ua.description,
        header={name: HeaderValues(values=values) for name, values in ua.header.items()},
    )


def is_fresh(state_view_version: int, password_checked_ms: int | None, user: UserView) -> bool:
    """True if a view rendered at ``state_view_version`` still matches the user as it is now."""
    if state_view_version != user.version:
        return False
    return password_checked_ms is None or password_checked_ms >= user.password_changed_ms
