"""PingOne Sessions API bodies: the request model, its validation, and the session resource.

The facade translates at the edge: a request becomes a ``SignOnReport`` for the session
rules (no second copy of them), and a ``SessionState`` — whichever API wrote it — becomes
PingOne's resource with its HAL links. Bad input raises ``InvalidField``, which the transport
renders in PingOne's error shape with the field as the detail's ``target``. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated

import msgspec

from actors.activity import MAX_IDLE_TIMEOUT_MS
from actors.errors import ValidationFailed
from actors.limits import MAX_TIMESTAMP_MS
from actors.model import AgentDetails, Location, SessionState, SignOn, SignOnMethod
from actors.timefmt import parse_rfc3339_ms, rfc3339_ms3
from app.services.user_agents import MAX_USER_AGENT_CHARS, parse_user_agent

_MINUTE_MS = 60_000
#: PingOne's SSO idle timeout when a create names none (its sign-on policies' 30 days).
DEFAULT_IDLE_TIMEOUT_MINUTES = 30 * 24 * 60
#: A client-chosen ``ST`` token: at least 128 bits of a random 22-character base64 value.
MIN_TOKEN_CHARS, MAX_TOKEN_CHARS = 16, 512
MAX_AUTHENTICATORS = 16
#: The content type of ``POST /sessions/me`` that signs the user out of the session.
LOGOUT_CONTENT_TYPE = "application/vnd.pingidentity.sso.session.logout"

Text = Annotated[str, msgspec.Meta(max_length=256)]


class InvalidField(ValidationFailed):
    """A 400 naming the field at fault (PingOne's ``details[].target``)."""

    def __init__(self, target: str, message: str, detail_code: str = "INVALID_VALUE") -> None:
        super().__init__(message)
        self.target = target
        self.detail_code = detail_code


# -- requests ---------------------------------------------------------------------------------
class Policy(msgspec.Struct, frozen=True, kw_only=True):
    id: Text
    type: Text


class WithAuthenticator(msgspec.Struct, frozen=True, kw_only=True):
    at: Text
    policy: Policy


class LastSignOnIn(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    remote_ip: Text
    authenticators: Annotated[list[Text], msgspec.Meta(max_length=MAX_AUTHENTICATORS)] = []
    with_authenticator: Annotated[
        dict[Text, WithAuthenticator], msgspec.Meta(max_length=MAX_AUTHENTICATORS)
    ] = {}


class UserIn(msgspec.Struct, frozen=True, kw_only=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SessionIn(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Create and ``PUT /sessions/me`` (a full replace); ``id`` is the server's, ignored."""

    active_at: Text
    user_agent: str
    #: A number or a numeric string (PingOne's own examples send ``"144000"``).
    idle_timeout_in_minutes: int | str | None = None
    last_sign_on: LastSignOnIn | None = None
    token: str | None = None
    user: UserIn | None = None
    id: Text | None = None


class Validated(msgspec.Struct, frozen=True, kw_only=True):
    """A request body checked field by field, ready for a ``SignOnReport``."""

    active_ms: int
    idle_timeout_ms: int | None
    sign_on: SignOn | None
    agent: AgentDetails
    token: str | None
    user_id: str | None

    def location(self, client_ip: str, now_ms: int) -> Location:
        """Where the sign-on came from: the reported address and time, else this request's."""
        if self.sign_on is None:
            return Location(at_ms=now_ms, remote_ip=client_ip)
        latest = self.sign_on.latest
        at_ms = latest[1].at_ms if latest is not None else self.active_ms
        return Location(at_ms=at_ms, remote_ip=self.sign_on.remote_ip)


def _time_ms(text: str, target: str) -> int:
    """An RFC 3339 time between 1970 and 9999 (UTC), the range every date here is written in."""
    try:
        ms = parse_rfc3339_ms(text)
    except (ValueError, ValidationFailed):
        raise InvalidField(target, f"{target} must be an RFC 3339 date-time") from None
    if not 0 <= ms <= MAX_TIMESTAMP_MS:
        raise InvalidField(target, f"{target} must lie between 1970 and 9999 (UTC)")
    return ms


def _idle_ms(value: int | str | None) -> int | None:
    if value is None:
        return None
    target = "idleTimeoutInMinutes"
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            raise InvalidField(target, f"{target} must be a whole number of minutes")
        value = int(text)
    if isinstance(value, bool) or not 0 < value * _MINUTE_MS <= MAX_IDLE_TIMEOUT_MS:
        raise InvalidField(
            target, f"{target} must be between 1 and {MAX_IDLE_TIMEOUT_MS // _MINUTE_MS}"
        )
    return value * _MINUTE_MS


@lru_cache(maxsize=4096)
def _ip(text: str, target: str) -> str:
    """Cached: a user's sign-ons come from few addresses."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise InvalidField(target, f"{target} must be an IPv4 or IPv6 address") from None


def _sign_on(raw: LastSignOnIn) -> SignOn:
    methods: dict[str, SignOnMethod] = {}
    for name, given in raw.with_authenticator.items():
        where = f"lastSignOn.withAuthenticator.{name}"
        if not name:
            raise InvalidField("lastSignOn.withAuthenticator", "an authenticator needs a name")
        methods[name] = SignOnMethod(
            at_ms=_time_ms(given.at, f"{where}.at"),
            policy_id=given.policy.id,
            policy_type=given.policy.type,
        )
    return SignOn(
        remote_ip=_ip(raw.remote_ip, "lastSignOn.remoteIp"),
        authenticators=tuple(raw.authenticators),
        methods=methods,
    )


def _token(token: str | None) -> str | None:
    if token is None:
        return None
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS or not token.isprintable():
        raise InvalidField(
            "token", f"token must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} printable characters"
        )
    return token


def _user_agent(raw: str) -> AgentDetails:
    if not raw or len(raw) > MAX_USER_AGENT_CHARS or not raw.isprintable():
        raise InvalidField(
            "userAgent", f"userAgent must be 1 to {MAX_USER_AGENT_CHARS} printable characters"
        )
    return parse_user_agent(raw)


def validate(body: SessionIn) -> Validated:
    """Every field's own rules; an anonymous session's ``lastSignOn`` is ignored, as PingOne's."""
    user_id = body.user.id if body.user is not None else None
    sign_on = _sign_on(body.last_sign_on) if user_id and body.last_sign_on else None
    return Validated(
        active_ms=_time_ms(body.active_at, "activeAt"),
        idle_timeout_ms=_idle_ms(body.idle_timeout_in_minutes),
        sign_on=sign_on,
        agent=_user_agent(body.user_agent),
        token=_token(body.token),
        user_id=user_id,
    )


# -- the resource -----------------------------------------------------------------------------
class Href(msgspec.Struct, frozen=True):
    href: str


class Links(msgspec.Struct, frozen=True, omit_defaults=True):
    self: Href
    environment: Href
    user: Href | None = None


class Ref(msgspec.Struct, frozen=True):
    id: str


class Named(msgspec.Struct, frozen=True):
    name: str
    version: str | None


class Device(msgspec.Struct, frozen=True):
    type: str


class LocationOut(msgspec.Struct, frozen=True, rename="camel"):
    at: str
    remote_ip: str


class PolicyOut(msgspec.Struct, frozen=True):
    id: str
    type: str


class MethodOut(msgspec.Struct, frozen=True):
    policy: PolicyOut
    at: str


class LastSignOnOut(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    remote_ip: str
    authenticators: list[str]
    with_authenticator: dict[str, MethodOut]
    policy: PolicyOut | None = None
    at: str | None = None


class SessionOut(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The session resource, fields in the order of PingOne's own example."""

    links: Links = msgspec.field(name="_links")
    id: str
    environment: Ref
    user: Ref | None
    created_at: str
    active_at: str
    idle_timeout_in_minutes: int | float | None
    user_agent: str | None
    browser: Named | None
    operating_system: Named | None
    device: Device | None
    locations: list[LocationOut]
    last_sign_on: LastSignOnOut | None
    expires_at: str | None


class SelfLink(msgspec.Struct, frozen=True):
    self: Href


class Embedded(msgspec.Struct, frozen=True):
    sessions: list[SessionOut]


class SessionList(msgspec.Struct, frozen=True):
    links: SelfLink = msgspec.field(name="_links")
    embedded: Embedded = msgspec.field(name="_embedded")
    count: int
    size: int


#: PingOne's dates: UTC with exactly three fractional digits.
iso_ms = rfc3339_ms3


def _minutes(ms: int | None) -> int | float | None:
    if ms is None:
        return None
    return ms // _MINUTE_MS if ms % _MINUTE_MS == 0 else ms / _MINUTE_MS


def _last_sign_on(sign_on: SignOn | None) -> LastSignOnOut | None:
    if sign_on is None:
        return None
    methods = {
        name: MethodOut(PolicyOut(m.policy_id, m.policy_type), iso_ms(m.at_ms))
        for name, m in sign_on.methods.items()
    }
    latest = sign_on.latest
    return LastSignOnOut(
        remote_ip=sign_on.remote_ip,
        authenticators=list(sign_on.authenticators),
        with_authenticator=methods,
        policy=PolicyOut(latest[1].policy_id, latest[1].policy_type) if latest else None,
        at=iso_ms(latest[1].at_ms) if latest else None,
    )


def _version(text: str) -> str | None:
    return text or None


def environment_url(base_url: str, env_id: str) -> str:
    return f"{base_url}/v1/environments/{env_id}"


def render(state: SessionState, *, base_url: str, env_id: str) -> SessionOut:
    """The PingOne view of any session; what PingOne has no field for is left out."""
    env = environment_url(base_url, env_id)
    user_id = state.user_id
    agent = state.agent
    return SessionOut(
        links=Links(
            self=Href(f"{env}/sessions/{state.id}"),
            environment=Href(env),
            user=Href(f"{env}/users/{user_id}") if user_id else None,
        ),
        id=state.id,
        environment=Ref(env_id),
        user=Ref(user_id) if user_id else None,
        created_at=iso_ms(state.creation_ms),
        active_at=iso_ms(state.last_active_ms),
        idle_timeout_in_minutes=_minutes(state.idle_timeout_ms),
        user_agent=agent.raw if agent else None,
        browser=Named(agent.browser_name, _version(agent.browser_version)) if agent else None,
        operating_system=Named(agent.os_name, _version(agent.os_version)) if agent else None,
        device=Device(agent.device_type) if agent else None,
        locations=[LocationOut(iso_ms(loc.at_ms), loc.remote_ip) for loc in state.locations],
        last_sign_on=_last_sign_on(state.sign_on),
        expires_at=iso_ms(state.expires_ms) if state.expires_ms is not None else None,
    )


def render_list(
    states: list[SessionState], *, base_url: str, env_id: str, user_id: str
) -> SessionList:
    env = environment_url(base_url, env_id)
    shown = [render(state, base_url=base_url, env_id=env_id) for state in states]
    return SessionList(
        links=SelfLink(Href(f"{env}/users/{user_id}/sessions")),
        embedded=Embedded(shown),
        count=len(shown),
        size=len(shown),
    )
