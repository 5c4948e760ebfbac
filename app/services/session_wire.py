"""Session API request/response types (ZITADEL's JSON names) and their mapping to commands.

Decoding validates shape (types, lengths, patterns); ``to_*`` functions turn requests into
commands and raise ``ValidationFailed`` for what a decoder cannot check (one-ofs, enums,
base64). A wire type's ``schema_rules`` state those rules in JSON Schema, for the OpenAPI
document (``app.transports.openapi``), next to the code that enforces them. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Annotated, Any, ClassVar

import msgspec

from actors import url_templates
from actors.commands import (
    Challenges,
    Checks,
    CreateSession,
    IntentCheck,
    OtpChallenge,
    SetSession,
    UserCheck,
    WebAuthnChallenge,
)
from actors.errors import ValidationFailed
from actors.http_urls import HTTP_URL_PATTERN, MAX_URL_LENGTH
from actors.model import PendingWebAuthn, UserAgent
from actors.queries import MAX_LIMIT, METHODS, SORTING_COLUMNS
from actors.timefmt import parse_duration_ms, parse_rfc3339_ms
from actors.views import SessionView
from app.services import webauthn_ceremony as ceremony

Str200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
OptStr200 = Annotated[str, msgspec.Meta(max_length=200)]
#: ``actors.http_urls``: the same pattern the rules check, published in the schema
HttpUrl = Annotated[
    str, msgspec.Meta(min_length=1, max_length=MAX_URL_LENGTH, pattern=HTTP_URL_PATTERN)
]
_B64_CHAR = "[A-Za-z0-9+/_-]"
#: Standard or URL-safe base64, padded or not (protojson accepts all four), as ``decode_bytes``
#: takes it: whole quads, then an optional last group of 2 or 3 characters and its padding.
B64_PATTERN = rf"^(?:{_B64_CHAR}{{4}})*(?:{_B64_CHAR}{{2}}(?:==?)?|{_B64_CHAR}{{3}}=?)?$"
#: A metadata value: base64 of at most ``max_metadata_value_bytes`` (4096 by default) bytes.
#: ``decode_bytes`` checks the base64 and ``actors.limits`` the size, so the schema alone
#: bounds it: 1365 quads (4095 bytes) and a group of 2 (1 byte), or 1364 and one of 3.
MetadataValue = Annotated[
    str,
    msgspec.Meta(
        extra_json_schema={
            "contentEncoding": "base64",
            "maxLength": 5464,
            "pattern": rf"^(?:(?:{_B64_CHAR}{{4}}){{0,1365}}(?:{_B64_CHAR}{{2}}(?:==?)?)?"
            rf"|(?:{_B64_CHAR}{{4}}){{0,1364}}{_B64_CHAR}{{3}}=?)$",
        }
    ),
]
#: A positive protobuf Duration of at most 11 digits of seconds (about 3000 years, so no
#: expiration passes year 9999) and at least a millisecond, the precision kept: "300s", "1.5s".
DURATION_PATTERN = (
    r"^(?:[1-9][0-9]{0,10}(?:\.[0-9]{1,9})?"
    r"|0\.(?:[1-9][0-9]{0,8}|0[1-9][0-9]{0,7}|00[1-9][0-9]{0,6}))s$"
)
#: The decoder leaves the value to ``_lifetime_ms`` and the session's own check of the
#: expiration (SESSION-lifetimeMax), which name what is wrong.
Duration = Annotated[
    str,
    msgspec.Meta(
        max_length=40, extra_json_schema={"pattern": DURATION_PATTERN, "examples": ["300s"]}
    ),
]
_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_HOUR, _MINUTE = "(?:[01][0-9]|2[0-3])", "[0-5][0-9]"
#: RFC 3339 as ``parse_rfc3339_ms`` reads it (no leap second, no year 0, an offset within a
#: day); ``format: date-time`` adds the calendar (no February 30th).
TIMESTAMP_PATTERN = (
    rf"^{_YEAR}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    rf"T{_HOUR}:{_MINUTE}:{_MINUTE}(?:\.[0-9]{{1,9}})?(?:Z|[+-]{_HOUR}:{_MINUTE})$"
)
Timestamp = Annotated[
    str,
    msgspec.Meta(
        max_length=40, pattern=TIMESTAMP_PATTERN, extra_json_schema={"format": "date-time"}
    ),
]


_B64 = re.compile(B64_PATTERN)
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def enum_of(names: tuple[str, ...] | list[str], *, zero: bool = True) -> dict[str, Any]:
    """The JSON schema of a protojson enum: its names or numbers (without 0 if not ``zero``)."""
    first = 0 if zero else 1
    return {"enum": [*names[first:], *range(first, len(names))]}


class Wire(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    pass


# -- requests ---------------------------------------------------------------------------------
def exactly_one(*names: str) -> dict[str, Any]:
    """JSON Schema of a proto oneof that must be set: exactly one of ``names`` non-null."""
    return {"oneOf": [present(name) for name in names]}


def at_most_one(*names: str) -> dict[str, Any]:
    """JSON Schema of an optional oneof: not both of ``names`` given non-null."""
    return {
        "not": {
            "required": list(names),
            "properties": {n: {"not": {"type": "null"}} for n in names},
        }
    }


def present(name: str) -> dict[str, Any]:
    """JSON Schema of a field that must be given, and not as null."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


class CheckUser(Wire):
    #: ``_checks``: exactly one of the two (ZITADEL's ``search`` oneof).
    schema_rules: ClassVar[dict[str, Any]] = exactly_one("userId", "loginName")
    user_id: Str200 | None = None
    login_name: Str200 | None = None


class CheckPassword(Wire):
    password: Str200


#: An assertion is a few hundred bytes; anything past this is refused before parsing.
MAX_ASSERTION_BYTES = 65_536


class CheckWebAuthN(Wire):
    #: the browser's ``PublicKeyCredential.toJSON()`` of ``navigator.credentials.get``
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


_USER_VERIFICATION = (
    "USER_VERIFICATION_REQUIREMENT_UNSPECIFIED",
    "USER_VERIFICATION_REQUIREMENT_REQUIRED",
    "USER_VERIFICATION_REQUIREMENT_PREFERRED",
    "USER_VERIFICATION_REQUIREMENT_DISCOURAGED",
)


class WebAuthNChallengeIn(Wire):
    #: ``_validate_challenges``: the requirement must be given, and not UNSPECIFIED.
    schema_rules: ClassVar[dict[str, Any]] = {"required": ["domain", "userVerificationRequirement"]}
    domain: Str200
    user_verification_requirement: Annotated[
        str | int, msgspec.Meta(extra_json_schema=enum_of(_USER_VERIFICATION, zero=False))
    ] = 0


class OTPSMSChallengeIn(Wire):
    return_code: bool = False


class SendCodeIn(Wire):
    url_template: OptStr200 | None = None


class ReturnCodeIn(Wire):
    pass


class OTPEmailChallengeIn(Wire):
    #: ``_validate_challenges``: the delivery type is a oneof.
    schema_rules: ClassVar[dict[str, Any]] = at_most_one("sendCode", "returnCode")
    send_code: SendCodeIn | None = None
    return_code: ReturnCodeIn | None = None


class ChallengesIn(Wire):
    web_auth_n: WebAuthNChallengeIn | None = None
    otp_sms: OTPSMSChallengeIn | None = None
    otp_email: OTPEmailChallengeIn | None = None


#: One header value: at most ``max_header_value_bytes`` (4096 by default) UTF-8 bytes, so
#: never more than 4096 characters (``actors.limits`` checks it: SESSION-uaValue).
HeaderValue = Annotated[str, msgspec.Meta(extra_json_schema={"maxLength": 4096})]


class HeaderValuesIn(Wire):
    #: at most ``max_header_values`` (16 by default) per header
    values: Annotated[list[HeaderValue], msgspec.Meta(extra_json_schema={"maxItems": 16})] = []


class UserAgentIn(Wire):
    fingerprint_id: OptStr200 | None = None
    ip: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    #: at most ``max_header_names`` (64 by default) headers
    header: Annotated[
        dict[Annotated[str, msgspec.Meta(max_length=256)], HeaderValuesIn],
        msgspec.Meta(extra_json_schema={"maxProperties": 64}),
    ] = {}


#: at most ``max_metadata_keys`` (100 by default) keys
MetadataIn = Annotated[
    dict[Annotated[str, msgspec.Meta(min_length=1, max_length=200)], MetadataValue],
    msgspec.Meta(extra_json_schema={"maxProperties": 100}),
]


SessionToken = Annotated[str, msgspec.Meta(max_length=400)]


class CreateSessionRequest(Wire):
    #: A new session has no user yet: a credential check needs the user check with it
    #: (``actors.machine``: COMMAND-Sfw3f, -8N9ds, -S453v, -4m9s2), and so does an OTP
    #: challenge (COMMAND-JKL3g, -JK3gp).
    schema_rules: ClassVar[dict[str, Any]] = {
        "properties": {
            "checks": {
                "if": {
                    "anyOf": [
                        present(name)
                        for name in ("password", "totp", "otpSms", "otpEmail", "recoveryCode")
                    ]
                },
                "then": present("user"),
            }
        },
        "if": {
            "required": ["challenges"],
            "properties": {
                "challenges": {
                    "type": "object",
                    "anyOf": [present("otpSms"), present("otpEmail")],
                }
            },
        },
        "then": {"required": ["checks"], "properties": {"checks": present("user")}},
    }
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
    #: 0 is the default page (100); more than MAX_LIMIT is refused (``_page``)
    limit: Annotated[int, msgspec.Meta(ge=0, extra_json_schema={"maximum": MAX_LIMIT})] = 0
    asc: bool = False


class IdsQuery(Wire):
    ids: list[Annotated[str, msgspec.Meta(max_length=200)]] = []


class UserIdQuery(Wire):
    id: OptStr200 = ""


_TIMESTAMP_METHOD = Annotated[str | int, msgspec.Meta(extra_json_schema=enum_of(list(METHODS)))]


class TimestampQuery(Wire):
    creation_date: Timestamp | None = None
    expiration_date: Timestamp | None = None
    method: _TIMESTAMP_METHOD = 0


class CreationDateQuery(TimestampQuery, kw_only=True):
    #: ``session_list._time``: the timestamp the query compares with is required
    schema_rules: ClassVar[dict[str, Any]] = present("creationDate")


class ExpirationDateQuery(TimestampQuery, kw_only=True):
    schema_rules: ClassVar[dict[str, Any]] = present("expirationDate")


#: ``{}`` (no id) means "mine"; an empty id is refused (``session_list._given_or_own``).
_MINE_OR_ID = Annotated[str, msgspec.Meta(max_length=200, extra_json_schema={"minLength": 1})]


class CreatorQuery(Wire):
    id: _MINE_OR_ID | None = None


class UserAgentQuery(Wire):
    #: Without an id the query means the caller's own user agent, which only a caller that
    #: authenticates with a session token has (any other caller gets a 400): documented as
    #: required.
    schema_rules: ClassVar[dict[str, Any]] = present("fingerprintId")
    fingerprint_id: _MINE_OR_ID | None = None


class SearchQuery(Wire):
    #: ``session_list.to_filter``: each query is exactly one kind
    schema_rules: ClassVar[dict[str, Any]] = exactly_one(
        "idsQuery",
        "userIdQuery",
        "creationDateQuery",
        "creatorQuery",
        "userAgentQuery",
        "expirationDateQuery",
    )
    ids_query: IdsQuery | None = None
    user_id_query: UserIdQuery | None = None
    creation_date_query: CreationDateQuery | None = None
    creator_query: CreatorQuery | None = None
    user_agent_query: UserAgentQuery | None = None
    expiration_date_query: ExpirationDateQuery | None = None


class ListSessionsRequest(Wire):
    query: ListQuery | None = None
    queries: list[SearchQuery] = []
    sorting_column: Annotated[
        str | int, msgspec.Meta(extra_json_schema=enum_of(list(SORTING_COLUMNS)))
    ] = 0


# -- responses --------------------------------------------------------------------------------
class Details(Wire):
    sequence: str = "0"
    change_date: str | None = None
    resource_owner: str = ""


class WebAuthNChallengeOut(Wire):
    #: ``{"publicKey": {challenge, timeout, rpId, allowCredentials, userVerification}}``
    public_key_credential_request_options: dict[str, Any]


class ChallengesOut(Wire):
    """A WebAuthn challenge's options; OTP codes asked with ``returnCode`` (only here)."""

    web_auth_n: WebAuthNChallengeOut | None = None
    otp_sms: str | None = None
    otp_email: str | None = None


class CreateSessionResponse(Wire):
    details: Details
    session_id: str
    session_token: str
    challenges: ChallengesOut | None = None


class SetSessionResponse(Wire):
    details: Details
    session_token: str | None = None
    challenges: ChallengesOut | None = None


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
    if _B64.fullmatch(text) is None:  # binascii alone would take "YWJj=" and "YQ===="
        raise ValidationFailed(f"invalid {where}: value is not valid base64")
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
        if raw != raw.strip():  # parse_duration_ms would overlook it
            raise ValueError(raw)
        lifetime_ms = parse_duration_ms(raw)
    except ValueError:
        raise ValidationFailed(f"invalid {rpc}.Lifetime: value must be a duration") from None
    if lifetime_ms <= 0:
        raise ValidationFailed(f"invalid {rpc}.Lifetime: value must be greater than 0s")
    return lifetime_ms


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
    return Checks(
        user=user,
        password=raw.password.password if raw.password is not None else None,
        idp_intent=IntentCheck(
            intent_id=raw.idp_intent.idp_intent_id, token=raw.idp_intent.idp_intent_token
        )
        if raw.idp_intent is not None
        else None,
        web_authn=_assertion(raw.web_auth_n),
        totp=raw.totp.code if raw.totp is not None else None,
        otp_sms=raw.otp_sms.code if raw.otp_sms is not None else None,
        otp_email=raw.otp_email.code if raw.otp_email is not None else None,
        recovery_code=raw.recovery_code.code if raw.recovery_code is not None else None,
    )


def _assertion(raw: CheckWebAuthN | None) -> bytes | None:
    if raw is None:
        return None
    encoded = msgspec.json.encode(raw.credential_assertion_data)
    if len(encoded) > MAX_ASSERTION_BYTES:  # no authenticator sends that much
        raise ceremony.malformed_assertion()
    return encoded


def _user_verification(value: str | int) -> int:
    """The enum's number (validated by ``_validate_challenges``)."""
    return value if isinstance(value, int) else _USER_VERIFICATION.index(value)


def _challenges(raw: ChallengesIn | None) -> Challenges:
    """The challenges; an e-mail's ``urlTemplate`` is validated now, not at delivery."""
    if raw is None:
        return Challenges()
    web_authn = None
    if raw.web_auth_n is not None:
        web_authn = WebAuthnChallenge(
            domain=raw.web_auth_n.domain,
            user_verification=_user_verification(raw.web_auth_n.user_verification_requirement),
        )
    sms = OtpChallenge(return_code=raw.otp_sms.return_code) if raw.otp_sms is not None else None
    email = None
    if raw.otp_email is not None:
        template = raw.otp_email.send_code.url_template if raw.otp_email.send_code else None
        if template:
            url_templates.validate(template)
        email = OtpChallenge(
            return_code=raw.otp_email.return_code is not None, url_template=template or None
        )
    return Challenges(web_authn=web_authn, otp_sms=sms, otp_email=email)


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
    _validate_challenges(request.challenges)
    return CreateSession(
        checks=_checks(request.checks, rpc),
        metadata=_metadata(request.metadata, rpc),
        user_agent=_user_agent(request.user_agent),
        lifetime_ms=_lifetime_ms(request.lifetime, rpc),
        challenges=_challenges(request.challenges),
    )


def to_set(request: SetSessionRequest) -> SetSession:
    rpc = "SetSessionRequest"
    _validate_challenges(request.challenges)
    return SetSession(
        checks=_checks(request.checks, rpc),
        metadata=_metadata(request.metadata, rpc),
        lifetime_ms=_lifetime_ms(request.lifetime, rpc),
        challenges=_challenges(request.challenges),
    )


def challenges_out(
    sms: str | None, email: str | None, web_authn: PendingWebAuthn | None = None
) -> ChallengesOut | None:
    if not (sms or email or web_authn):
        return None
    options = None
    if web_authn is not None:
        request_options = ceremony.request_options(web_authn)
        options = WebAuthNChallengeOut(public_key_credential_request_options=request_options)
    return ChallengesOut(web_auth_n=options, otp_sms=sms, otp_email=email)


def timestamp_ms(raw: str | None, where: str) -> int:
    if raw is None:
        raise ValidationFailed(f"invalid {where}: value is required")
    try:
        if _TIMESTAMP.fullmatch(raw) is None:
            raise ValueError(raw)
        return parse_rfc3339_ms(raw)
    except ValueError:
        raise ValidationFailed(f"invalid {where}: value must be an RFC 3339 timestamp") from None
