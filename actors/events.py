"""Facts appended to a session's history, named and shaped as ZITADEL's eventstore names them.

Each event is a tagged msgspec Struct; the tag is ZITADEL's event type. ``stream_payload``
gives the payload published on the Redis streams: it never carries a token, a token hash or a
password, only what ZITADEL itself publishes.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from actors.model import AgentDetails, Location, PendingWebAuthn, SignOn, UserAgent
from actors.timefmt import rfc3339_ms

NS_PER_MS = 1_000_000


class SessionAdded(msgspec.Struct, frozen=True, kw_only=True, tag="session.added"):
    creator_id: str
    user_agent: UserAgent | None = None


class UserChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.user.checked"):
    user_id: str
    user_org_id: str
    checked_at_ms: int
    login_name: str = ""
    display_name: str = ""
    preferred_language: str = ""
    view_version: int = 0


class PasswordChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.password.checked"):
    checked_at_ms: int


class IntentChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.intent.checked"):
    """A succeeded IdP intent was consumed by this session: the IdP authenticated the user."""

    checked_at_ms: int


class WebAuthNChallenged(
    msgspec.Struct, frozen=True, kw_only=True, tag="session.webAuthN.challenged"
):
    """The challenge is public (it is in the response); it is a nonce, not a secret."""

    pending: PendingWebAuthn


class WebAuthNChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.webAuthN.checked"):
    checked_at_ms: int
    user_verified: bool = False


class TotpChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.totp.checked"):
    checked_at_ms: int


class OtpSmsChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.otp.sms.checked"):
    checked_at_ms: int


class OtpEmailChecked(msgspec.Struct, frozen=True, kw_only=True, tag="session.otp.email.checked"):
    checked_at_ms: int


class RecoveryCodeChecked(
    msgspec.Struct, frozen=True, kw_only=True, tag="session.recoverycode.checked"
):
    """ZITADEL's type name for this event is not in its sources; the spec's suggestion."""

    checked_at_ms: int


class OtpSmsChallenged(msgspec.Struct, frozen=True, kw_only=True, tag="session.otp.sms.challenged"):
    """The code's keyed hash stays in the session; the streams get only its lifetime."""

    code_hash: str
    expires_ms: int
    code_returned: bool = False


class OtpEmailChallenged(
    msgspec.Struct, frozen=True, kw_only=True, tag="session.otp.email.challenged"
):
    code_hash: str
    expires_ms: int
    return_code: bool = False
    url_template: str = ""


class MetadataSet(msgspec.Struct, frozen=True, kw_only=True, tag="session.metadata.set"):
    metadata: dict[str, bytes]


class LifetimeSet(msgspec.Struct, frozen=True, kw_only=True, tag="session.lifetime.set"):
    lifetime_ms: int


class TokenSet(msgspec.Struct, frozen=True, kw_only=True, tag="session.token.set"):
    token_id: str
    token_hash: str


class Terminated(msgspec.Struct, frozen=True, kw_only=True, tag="session.terminated"):
    #: "" when a caller ended it; ``evicted`` when the per-user cap did.
    reason: str = ""


class ActivitySet(msgspec.Struct, frozen=True, kw_only=True, tag="session.activity.set"):
    """Not a ZITADEL event: PingOne's ``activeAt`` (reported, or a token read)."""

    active_ms: int


class IdleTimeoutSet(msgspec.Struct, frozen=True, kw_only=True, tag="session.idleTimeout.set"):
    idle_timeout_ms: int


class SignOnReported(msgspec.Struct, frozen=True, kw_only=True, tag="session.signOn.reported"):
    """A PingOne create or update: one event for the whole report, so a create stays cheap.

    ``None`` fields keep what the session had; ``st_token_hash`` (a keyed hash) lives in the
    state only, the streams say no more than that a token was set.
    """

    active_ms: int
    location: Location
    sign_on: SignOn | None = None
    idle_timeout_ms: int | None = None
    agent: AgentDetails | None = None
    st_token_hash: str | None = None


class AuthenticationReset(
    msgspec.Struct, frozen=True, kw_only=True, tag="session.authentication.reset"
):
    pass


Event = (
    SessionAdded
    | UserChecked
    | PasswordChecked
    | IntentChecked
    | WebAuthNChallenged
    | WebAuthNChecked
    | TotpChecked
    | OtpSmsChecked
    | OtpEmailChecked
    | RecoveryCodeChecked
    | OtpSmsChallenged
    | OtpEmailChallenged
    | MetadataSet
    | LifetimeSet
    | TokenSet
    | Terminated
    | ActivitySet
    | IdleTimeoutSet
    | SignOnReported
    | AuthenticationReset
)


#: The events that are not ZITADEL's: activity and the PingOne fields.
ActivityEvent = ActivitySet | IdleTimeoutSet | SignOnReported | AuthenticationReset


def event_type(event: Event) -> str:
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)  # noqa: S101 - every event class above declares a str tag
    return tag


def _user_agent_payload(ua: UserAgent) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ua.fingerprint_id is not None:
        out["fingerprint_id"] = ua.fingerprint_id
    if ua.ip is not None:
        out["ip"] = ua.ip
    if ua.description is not None:
        out["description"] = ua.description
    if ua.header:
        out["header"] = ua.header
    return out


def _challenge_payload(event: OtpSmsChallenged | OtpEmailChallenged, at_ms: int) -> dict[str, Any]:
    payload: dict[str, Any] = {"expiry": max(0, event.expires_ms - at_ms) * NS_PER_MS}
    if isinstance(event, OtpSmsChallenged):
        if event.code_returned:
            payload["codeReturned"] = True
        return payload
    if event.return_code:
        payload["returnCode"] = True
    if event.url_template:
        payload["urlTmpl"] = event.url_template
    return payload


def _web_authn_payload(event: WebAuthNChallenged | WebAuthNChecked) -> dict[str, Any]:
    if isinstance(event, WebAuthNChecked):
        payload: dict[str, Any] = {"checkedAt": rfc3339_ms(event.checked_at_ms)}
        if event.user_verified:
            payload["userVerified"] = True
        return payload
    pending = event.pending
    return {  # ZITADEL's field names, the typo included
        "challenge": pending.challenge,
        "allowedCrentialIDs": list(pending.allowed_credentials),
        "userVerification": pending.user_verification,
        "rpid": pending.rp_id,
    }


def _sign_on_payload(event: SignOnReported) -> dict[str, Any]:
    location = {"at": rfc3339_ms(event.location.at_ms), "remoteIp": event.location.remote_ip}
    payload: dict[str, Any] = {"activeAt": rfc3339_ms(event.active_ms), "location": location}
    sign_on = event.sign_on
    if sign_on is not None:
        payload["authenticators"] = list(sign_on.authenticators)
        payload["remoteIp"] = sign_on.remote_ip
    if event.idle_timeout_ms is not None:
        payload["idleTimeout"] = event.idle_timeout_ms * NS_PER_MS
    agent = event.agent
    if agent is not None:  # parsed: the raw string is in the state, not repeated here
        payload["browser"] = {"name": agent.browser_name, "version": agent.browser_version}
        payload["operatingSystem"] = {"name": agent.os_name, "version": agent.os_version}
        payload["device"] = {"type": agent.device_type}
    if event.st_token_hash is not None:
        payload["stTokenSet"] = True
    return payload


def stream_payload(event: Event, at_ms: int = 0) -> dict[str, Any]:
    """The payload ZITADEL writes for this event (secrets left out).

    ZITADEL puts the encrypted code in ``*.challenged``; the public streams here carry no
    trace of it (its expiry as a duration from ``at_ms``, the event's time, instead).
    """
    match event:
        case SessionAdded(user_agent=ua):
            return {"user_agent": _user_agent_payload(ua)} if ua else {}
        case UserChecked():
            payload: dict[str, Any] = {
                "userID": event.user_id,
                "userResourceOwner": event.user_org_id,
                "checkedAt": rfc3339_ms(event.checked_at_ms),
            }
            if event.preferred_language:
                payload["preferredLanguage"] = event.preferred_language
            return payload
        case (
            PasswordChecked(checked_at_ms=at)
            | IntentChecked(checked_at_ms=at)
            | TotpChecked(checked_at_ms=at)
            | OtpSmsChecked(checked_at_ms=at)
            | OtpEmailChecked(checked_at_ms=at)
            | RecoveryCodeChecked(checked_at_ms=at)
        ):
            return {"checkedAt": rfc3339_ms(at)}
        case OtpSmsChallenged() | OtpEmailChallenged():
            return _challenge_payload(event, at_ms)
        case WebAuthNChallenged() | WebAuthNChecked():
            return _web_authn_payload(event)
        case MetadataSet(metadata=metadata):
            return {"metadata": {k: base64.b64encode(v).decode() for k, v in metadata.items()}}
        case LifetimeSet(lifetime_ms=lifetime_ms):
            return {"lifetime": lifetime_ms * NS_PER_MS}
        case TokenSet(token_id=token_id):
            return {"tokenID": token_id}
        case Terminated(reason=reason):
            return {"reason": reason} if reason else {}
        case _:
            return _activity_payload(event)


def _activity_payload(event: ActivityEvent) -> dict[str, Any]:
    """The payloads of the events that are not ZITADEL's (activity, PingOne fields)."""
    match event:
        case ActivitySet(active_ms=active_ms):
            return {"activeAt": rfc3339_ms(active_ms)}
        case IdleTimeoutSet(idle_timeout_ms=idle_ms):
            return {"idleTimeout": idle_ms * NS_PER_MS}
        case SignOnReported():
            return _sign_on_payload(event)
        case _:  # AuthenticationReset: nothing to publish
            return {}
