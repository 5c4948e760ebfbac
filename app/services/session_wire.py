"""Session API request/response types (ZITADEL's JSON names) and their mapping to commands.

Decoding validates shape (types, lengths, enums); ``to_*`` functions turn requests into
commands and raise ``ValidationFailed`` for what the schema cannot say (one-ofs, base64,
durations). Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from functools import cache
from typing import Annotated, Any, ClassVar

import msgspec

from actors.commands import Checks, CreateSession, SetSession, UserCheck
from actors.errors import Unimplemented, ValidationFailed
from actors.model import UserAgent
from actors.timefmt import parse_duration_ms, parse_rfc3339_ms
from actors.views import SessionView

Str200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OptStr200 = Annotated[str, msgspec.Meta(max_length=200)]
B64 = Annotated[
    str,
    msgspec.Meta(
        max_length=1_000_000,
        extra_json_schema={"contentEncoding": "base64", "pattern": r"^[A-Za-z0-9+/_=-]*$"},
    ),
]
Duration = Annotated[
    str,
    msgspec.Meta(
        max_length=40, extra_json_schema={"pattern": r"^-?\d+(\.\d{1,9})?s$", "examples": ["300s"]}
    ),
]
Timestamp = Annotated[str, msgspec.Meta(max_length=40, extra_json_schema={"format": "date-time"})]


class Wire(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    pass


# -- requests ---------------------------------------------------------------------------------
class CheckUser(Wire):
    user_id: Str200 | None = None
    login_name: Str200 | None = None


class CheckPassword(Wire):
    password: Str200


class CheckWebAuthN(Wire):
    credential_assertion_data: dict[str, Any]


class CheckIDPIntent(Wire):
    idp_intent_id: Str200
    idp_intent_token: Str200


class CheckTOTP(Wire):
    code: Annotated[str, msgspec.Meta(min_length=6, max_length=6)]


class CheckOTP(Wire):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class CheckRecoveryCode(Wire):
    code: Str200


class ChecksIn(Wire):
    user: CheckUser | None = None
    password: CheckPassword | None = None
    web_auth_n: CheckWebAuthN | None = None
    idp_intent: CheckIDPIntent | None = None
    totp: CheckTOTP | None = None
    otp_sms: CheckOTP | None = None
    otp_email: CheckOTP | None = None
    recovery_code: CheckRecoveryCode | None = None


class WebAuthNChallengeIn(Wire):
    domain: Str200
    user_verification_requirement: str | int = 0


class OTPSMSChallengeIn(Wire):
    return_code: bool = False


class SendCodeIn(Wire):
    url_template: OptStr200 | None = None


class ReturnCodeIn(Wire):
    pass


class OTPEmailChallengeIn(Wire):
    send_code: SendCodeIn | None = None
    return_code: ReturnCodeIn | None = None


class ChallengesIn(Wire):
    web_auth_n: WebAuthNChallengeIn | None = None
    otp_sms: OTPSMSChallengeIn | None = None
    otp_email: OTPEmailChallengeIn | None = None


class HeaderValuesIn(Wire):
    values: list[Annotated[str, msgspec.Meta(max_length=8192)]] = []


class UserAgentIn(Wire):
    fingerprint_id: OptStr200 | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    header: dict[Annotated[str, msgspec.Meta(max_length=256)], HeaderValuesIn] = {}


MetadataIn = dict[Annotated[str, msgspec.Meta(min_length=1, max_length=200)], B64]


SessionToken = Annotated[str, msgspec.Meta(max_length=400)]


class CreateSessionRequest(Wire):
    checks: ChecksIn | None = None
    metadata: MetadataIn = {}
    user_agent: UserAgentIn | None = None
    lifetime: Duration | None = None
    challenges: ChallengesIn | None = None


class SetSessionRequest(Wire):
    required: ClassVar[tuple[str, ...]] = ("session_id",)
    session_id: Str200 = ""
    session_token: SessionToken | None = None  # deprecated in ZITADEL, ignored
    checks: ChecksIn | None = None
    metadata: MetadataIn = {}
    lifetime: Duration | None = None
    challenges: ChallengesIn | None = None


class GetSessionRequest(Wire):
    required: ClassVar[tuple[str, ...]] = ("session_id",)
    session_id: Str200 = ""
    session_token: Annotated[str, msgspec.Meta(min_length=1, max_length=400)] | None = None


class DeleteSessionRequest(Wire):
    required: ClassVar[tuple[str, ...]] = ("session_id",)
    session_id: Str200 = ""
    session_token: SessionToken | None = None


class ListQuery(Wire):
    #: uint64 in the proto; Redis (and msgspec) take signed 64-bit, so 2^63 and up are a 400
    offset: Annotated[int, msgspec.Meta(ge=0, le=9_223_372_036_854_775_807)] = 0
    limit: Annotated[int, msgspec.Meta(ge=0, le=4_294_967_295)] = 0
    asc: bool = False


class IdsQuery(Wire):
    ids: list[Annotated[str, msgspec.Meta(max_length=200)]] = []


class UserIdQuery(Wire):
    id: OptStr200 = ""


class TimestampQuery(Wire):
    creation_date: Timestamp | None = None
    expiration_date: Timestamp | None = None
    method: str | int = 0


class CreatorQuery(Wire):
    id: OptStr200 | None = None


class UserAgentQuery(Wire):
    fingerprint_id: OptStr200 | None = None


class SearchQuery(Wire):
    ids_query: IdsQuery | None = None
    user_id_query: UserIdQuery | None = None
    creation_date_query: TimestampQuery | None = None
    creator_query: CreatorQuery | None = None
    user_agent_query: UserAgentQuery | None = None
    expiration_date_query: TimestampQuery | None = None


class ListSessionsRequest(Wire):
    query: ListQuery | None = None
    queries: list[SearchQuery] = []
    sorting_column: str | int = 0


# -- responses --------------------------------------------------------------------------------
class Details(Wire):
    sequence: str = "0"
    change_date: str | None = None
    resource_owner: str = ""


class CreateSessionResponse(Wire):
    details: Details
    session_id: str
    session_token: str


class SetSessionResponse(Wire):
    details: Details
    session_token: str | None = None


class DeleteSessionResponse(Wire):
    details: Details


class ListDetails(Wire):
    total_result: str = "0"
    processed_sequence: str = "0"
    timestamp: str | None = None


class GetSessionResponse(Wire):
    """The documented shape; the service answers ``GetSessionBody``, which encodes the same."""

    session: SessionView


class ListSessionsResponse(Wire):
    """The documented shape; the service answers ``ListSessionsBody``, which encodes the same."""

    details: ListDetails
    sessions: list[SessionView] = []


class GetSessionBody(Wire):
    """``session`` is the stored, pre-encoded view: spliced into the body, never re-decoded."""

    session: msgspec.Raw


class ListSessionsBody(Wire):
    details: ListDetails
    sessions: list[msgspec.Raw] = []


# -- mapping ----------------------------------------------------------------------------------
def decode_bytes(text: str, where: str) -> bytes:
    """Standard or URL-safe base64, padded or not (protojson accepts all four)."""
    cleaned = text.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(f"invalid {where}: value is not valid base64") from None


def _metadata(raw: dict[str, str], rpc: str) -> dict[str, bytes]:
    return {key: decode_bytes(value, f"{rpc}.Metadata[{key!r}]") for key, value in raw.items()}


def _lifetime_ms(raw: str | None, rpc: str) -> int | None:
    if raw is None:
        return None
    try:
        lifetime_ms = parse_duration_ms(raw)
    except ValueError:
        raise ValidationFailed(f"invalid {rpc}.Lifetime: value must be a duration") from None
    if lifetime_ms <= 0:
        raise ValidationFailed(f"invalid {rpc}.Lifetime: value must be greater than 0s")
    return lifetime_ms


_USER_VERIFICATION = (
    "USER_VERIFICATION_REQUIREMENT_UNSPECIFIED",
    "USER_VERIFICATION_REQUIREMENT_REQUIRED",
    "USER_VERIFICATION_REQUIREMENT_PREFERRED",
    "USER_VERIFICATION_REQUIREMENT_DISCOURAGED",
)


@cache
def _json_names(kind: type[Wire]) -> tuple[tuple[str, str], ...]:
    """(attribute, JSON name) of each field; cached: ``structs.fields`` costs ~250 µs."""
    return tuple((field.name, field.encode_name) for field in msgspec.structs.fields(kind))


def _present(message: Wire | None, prefix: str) -> list[str]:
    """JSON paths of the set fields of ``message`` (``checks.webAuthN``); ``{}`` counts."""
    if message is None:
        return []
    return [
        f"{prefix}.{json_name}"
        for name, json_name in _json_names(type(message))
        if getattr(message, name) is not None
    ]


def _validate_challenges(challenges: ChallengesIn | None) -> None:
    """What ZITADEL's validation refuses before any challenge logic runs (400)."""
    if challenges is None:
        return
    web_auth_n = challenges.web_auth_n
    if web_auth_n is not None:
        value = web_auth_n.user_verification_requirement
        known = value in _USER_VERIFICATION[1:] or (isinstance(value, int) and 0 < value < 4)
        if not known:
            raise ValidationFailed(
                "invalid RequestChallenges_WebAuthN.UserVerificationRequirement: value must be"
                " one of the defined enum values and not in list [0]"
            )
    email = challenges.otp_email
    if email is not None and email.send_code is not None and email.return_code is not None:
        raise ValidationFailed(
            "invalid RequestChallenges_OTPEmail.DeliveryType: sendCode and returnCode are a oneof"
        )


#: Checks this release performs; any other check or challenge is refused, never ignored.
_BUILT_CHECKS = frozenset({"checks.user", "checks.password"})


def _refuse_unsupported(raw: ChecksIn | None, challenges: ChallengesIn | None) -> None:
    """A login UI must never believe a second factor was checked when it was not: 501.

    An empty message (``{"totp": {}}``) is present in proto3 JSON and asks for the check, so
    it counts; validation (400) comes first, as in ZITADEL.
    """
    _validate_challenges(challenges)
    pending = [path for path in _present(raw, "checks") if path not in _BUILT_CHECKS]
    pending += _present(challenges, "challenges")
    if pending:
        raise Unimplemented(
            "SESSION-notYet", "Errors.Session.NotSupported", extra={"unsupported": pending}
        )


def _checks(raw: ChecksIn | None, rpc: str) -> Checks:
    if raw is None:
        return Checks()
    user = None
    if raw.user is not None:
        given = [v for v in (raw.user.user_id, raw.user.login_name) if v is not None]
        if len(given) != 1:
            raise ValidationFailed(
                f"invalid {rpc}.Checks: embedded message failed validation "
                "| caused by: invalid CheckUser.Search: value is required"
            )
        user = UserCheck(user_id=raw.user.user_id, login_name=raw.user.login_name)
    password = raw.password.password if raw.password is not None else None
    return Checks(user=user, password=password)


def canonical_ip(raw: str | None) -> str | None:
    """ZITADEL parses the IP; an unparsable value is silently dropped."""
    if not raw:
        return None
    try:
        return ipaddress.ip_address(raw.strip()).compressed
    except ValueError:
        return None


def _user_agent(raw: UserAgentIn | None) -> UserAgent | None:
    if raw is None:
        return None
    agent = UserAgent(
        fingerprint_id=raw.fingerprint_id,
        ip=canonical_ip(raw.ip),
        description=raw.description,
        header={name: list(values.values) for name, values in raw.header.items()},
    )
    return agent if agent != UserAgent() else None


def to_create(request: CreateSessionRequest) -> CreateSession:
    rpc = "CreateSessionRequest"
    _refuse_unsupported(request.checks, request.challenges)
    return CreateSession(
        checks=_checks(request.checks, rpc),
        metadata=_metadata(request.metadata, rpc),
        user_agent=_user_agent(request.user_agent),
        lifetime_ms=_lifetime_ms(request.lifetime, rpc),
    )


def to_set(request: SetSessionRequest) -> SetSession:
    rpc = "SetSessionRequest"
    _refuse_unsupported(request.checks, request.challenges)
    return SetSession(
        checks=_checks(request.checks, rpc),
        metadata=_metadata(request.metadata, rpc),
        lifetime_ms=_lifetime_ms(request.lifetime, rpc),
    )


def timestamp_ms(raw: str | None, where: str) -> int:
    if raw is None:
        raise ValidationFailed(f"invalid {where}: value is required")
    try:
        return parse_rfc3339_ms(raw)
    except ValueError:
        raise ValidationFailed(f"invalid {where}: value must be an RFC 3339 timestamp") from None
