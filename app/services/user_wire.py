"""The wire types of the User API v2 slice (ZITADEL's messages) and records → responses.

msgspec Structs (camelCase on the wire via ``Wire``); the OpenAPI document is generated from
them, so they are also the published schema. Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from actors.permissions import INSTANCE_ROLES, ORG_ROLES
from actors.timefmt import rfc3339_ms
from actors.user_factors import BASE32_PATTERN
from actors.user_names import GENDERS
from actors.user_records import Human, User
from app.services.session_wire import (
    Details,
    OptStr200,
    Str200,
    Timestamp,
    Wire,
    at_most_one,
    exactly_one,
    present,
)

Code20 = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


# -- requests ---------------------------------------------------------------------------------
class UserIdRequest(Wire):
    """Requests that name one user: ``user_id`` is the REST path's ``{userId}``."""

    required: ClassVar[tuple[str, ...]] = ("user_id",)
    user_id: Str200 = ""


class GetUserByIDRequest(UserIdRequest, kw_only=True):
    pass


class DeactivateUserRequest(UserIdRequest, kw_only=True):
    pass


class ReactivateUserRequest(UserIdRequest, kw_only=True):
    pass


class LockUserRequest(UserIdRequest, kw_only=True):
    pass


class UnlockUserRequest(UserIdRequest, kw_only=True):
    pass


class DeleteUserRequest(UserIdRequest, kw_only=True):
    pass


class Organization(Wire):
    org_id: Str200 | None = None
    org_domain: Str200 | None = None


class SendCode(Wire):
    url_template: OptStr200 | None = None


class ReturnCode(Wire):
    pass


#: ``user_creation._refuse_unsupported``: a local part, ``@``, a domain, no space.
Email = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, extra_json_schema={"pattern": "^[^@ ]+@[^ ]+$"})
]


class EmailIn(Wire):
    email: Email
    send_code: SendCode | None = None
    return_code: ReturnCode | None = None
    is_verified: bool = False


class PhoneIn(Wire):
    phone: OptStr200 = ""
    send_code: SendCode | None = None
    return_code: ReturnCode | None = None
    is_verified: bool = False


#: ``actors.user_names.gender_name``: a name or number; "", 0 and null are unspecified.
Gender = Annotated[
    str | int, msgspec.Meta(extra_json_schema={"enum": ["", *GENDERS, *range(len(GENDERS))]})
]


class ProfileIn(Wire):
    given_name: Str200
    family_name: Str200
    nick_name: OptStr200 = ""
    display_name: OptStr200 = ""
    preferred_language: Annotated[str, msgspec.Meta(max_length=10)] = ""
    gender: Gender | None = None


class PasswordIn(Wire):
    password: Str200
    change_required: bool = False


_ARGON2_PARAMS = "|".join(
    ",".join(f"{key}=[0-9]+" for key in order)
    for order in ("mtp", "mpt", "tmp", "tpm", "pmt", "ptm")
)
#: ASCII but ``$``: argon2-cffi takes any salt and hash text, but encodes it as ASCII.
_PHC_FIELD = r"[\x00-#%-\x7f]*"
#: An argon2 hash in PHC form, the one kind ``PasswordHasher.accepts`` can verify.
ARGON2_PATTERN = (
    rf"^\$argon2(?:id|i|d)(?:\$v=[0-9]+)?\$(?:{_ARGON2_PARAMS})\${_PHC_FIELD}\${_PHC_FIELD}$"
)


class HashedPasswordIn(Wire):
    hash: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=200, extra_json_schema={"pattern": ARGON2_PATTERN}),
    ]
    change_required: bool = False


#: An imported RFC 6238 seed (SHA-1, 30 s steps)
TotpSecret = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, extra_json_schema={"pattern": BASE32_PATTERN}),
]

#: A field this server does not support yet (``user_creation._refuse_unsupported``).
_NOT_BUILT = msgspec.Meta(
    extra_json_schema={"description": "not supported yet: a non-empty value is answered 501"}
)


class IDPLink(Wire):
    """A user's account at a configured identity provider (``idpId``, its user id, name)."""

    idp_id: Str200
    user_id: Str200
    user_name: Str200


class HumanIn(Wire):
    #: ``user_creation._refuse_unsupported``: a password or its hash, not both
    schema_rules: ClassVar[dict[str, Any]] = at_most_one("password", "hashedPassword")
    profile: ProfileIn
    email: EmailIn
    phone: PhoneIn | None = None
    password: PasswordIn | None = None
    hashed_password: HashedPasswordIn | None = None
    metadata: tuple[Any, ...] = ()
    idp_links: tuple[IDPLink, ...] = ()
    #: ``actors.user_factors.normalized_totp_secret``: a base32 seed, ready at once
    totp_secret: TotpSecret | None = None


class AddHumanUserRequest(HumanIn):
    user_id: Str200 | None = None
    username: Str200 | None = None
    organization: Organization | None = None


class MachineIn(Wire):
    name: Str200
    description: OptStr200 = ""


class CreateUserRequest(Wire):
    #: ``create_user``: exactly one of human and machine (ZITADEL's ``userType`` oneof)
    schema_rules: ClassVar[dict[str, Any]] = exactly_one("human", "machine")
    #: Required in ZITADEL; we fall back to the default organization, like AddHumanUser.
    organization_id: Str200 | None = None
    user_id: Str200 | None = None
    username: Str200 | None = None
    human: HumanIn | None = None
    machine: MachineIn | None = None


class SetPasswordRequest(UserIdRequest, kw_only=True):
    #: ``set_password``: one proof at most, the current password or the reset code
    schema_rules: ClassVar[dict[str, Any]] = at_most_one("currentPassword", "verificationCode")
    new_password: PasswordIn
    current_password: Str200 | None = None
    verification_code: Code20 | None = None


class VerifyEmailRequest(UserIdRequest, kw_only=True):
    verification_code: Code20


class VerifyPhoneRequest(UserIdRequest, kw_only=True):
    verification_code: Code20


#: ZITADEL's NotificationType: the channel a reset link goes out on (unspecified: e-mail).
NOTIFICATION_TYPES = (
    "NOTIFICATION_TYPE_Unspecified",
    "NOTIFICATION_TYPE_Email",
    "NOTIFICATION_TYPE_SMS",
)


class SendLink(Wire):
    notification_type: Annotated[
        str | int,
        msgspec.Meta(
            extra_json_schema={"enum": [*NOTIFICATION_TYPES, *range(len(NOTIFICATION_TYPES))]}
        ),
    ] = 0
    url_template: OptStr200 | None = None


class PasswordResetRequest(UserIdRequest, kw_only=True):
    #: ``user_credentials.password_reset``: a oneof with ``returnCode``
    schema_rules: ClassVar[dict[str, Any]] = at_most_one("sendLink", "returnCode")
    send_link: SendLink | None = None
    return_code: ReturnCode | None = None


#: ``actors.users.add_grant``: an organization's roles
OrgRole = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, extra_json_schema={"enum": sorted(ORG_ROLES)})
]


class OrgAdminIn(Wire):
    #: An existing user by id; ``human`` (a new user) is not supported yet (501), and
    #: neither is an admin without ``userId``.
    schema_rules: ClassVar[dict[str, Any]] = present("userId")
    user_id: Str200 | None = None
    human: Annotated[dict[str, Any] | None, _NOT_BUILT] = None
    #: default ORG_OWNER
    roles: tuple[OrgRole, ...] = ()


class AddOrganizationRequest(Wire):
    name: Str200
    organization_id: Str200 | None = None
    org_id: Str200 | None = None
    admins: tuple[OrgAdminIn, ...] = ()


class AddPersonalAccessTokenRequest(UserIdRequest, kw_only=True):
    #: in the future (400 otherwise)
    expiration_date: Timestamp | None = None


class ResourceIn(Wire):
    instance: bool = False
    organization_id: Str200 | None = None
    project_id: Annotated[str | None, _NOT_BUILT] = None
    project_grant: Annotated[dict[str, Any] | None, _NOT_BUILT] = None


def _grant_on(required: str, resource: dict[str, Any], roles: frozenset[str]) -> dict[str, Any]:
    return {
        "properties": {
            "resource": {"required": [required], "properties": resource},
            "roles": {"minItems": 1, "items": {"enum": sorted(roles)}},
        }
    }


class CreateAdministratorRequest(Wire):
    #: ``_grant_scope``: the instance or one organization, and ``add_grant``: roles of it
    schema_rules: ClassVar[dict[str, Any]] = {
        "oneOf": [
            _grant_on(
                "instance",
                {"instance": {"const": True}, "organizationId": {"type": "null"}},
                INSTANCE_ROLES,
            ),
            _grant_on(
                "organizationId",
                {"organizationId": {"type": "string"}, "instance": {"const": False}},
                ORG_ROLES,
            ),
        ]
    }
    user_id: Str200
    resource: ResourceIn
    roles: list[Str200]


# -- responses --------------------------------------------------------------------------------
class UserDetails(Details):
    creation_date: str | None = None


class AddHumanUserResponse(Wire):
    user_id: str
    details: Details
    email_code: str | None = None
    phone_code: str | None = None


class CreateUserResponse(Wire):
    id: str
    creation_date: str
    email_code: str | None = None
    phone_code: str | None = None


class DetailsResponse(Wire):
    details: Details


class PasswordResetResponse(Wire):
    details: Details
    verification_code: str | None = None


class ProfileOut(Wire):
    given_name: str = ""
    family_name: str = ""
    nick_name: str = ""
    display_name: str = ""
    preferred_language: str = ""
    gender: str = ""


class EmailOut(Wire):
    email: str = ""
    is_verified: bool = False


class PhoneOut(Wire):
    phone: str = ""
    is_verified: bool = False


class HumanOut(Wire):
    profile: ProfileOut
    email: EmailOut
    phone: PhoneOut
    password_change_required: bool = False
    password_changed: str | None = None


class MachineOut(Wire):
    name: str
    description: str = ""


class UserOut(Wire):
    user_id: str
    details: UserDetails
    state: str
    username: str
    login_names: list[str]
    preferred_login_name: str
    human: HumanOut | None = None
    machine: MachineOut | None = None


class GetUserResponse(Wire):
    details: UserDetails
    user: UserOut


class CreatedAdmin(Wire):
    user_id: str


class AddOrganizationResponse(Wire):
    details: Details
    organization_id: str
    created_admins: tuple[CreatedAdmin, ...] = ()


class AddPersonalAccessTokenResponse(Wire):
    details: Details
    creation_date: str
    token_id: str
    token: str


class CreateAdministratorResponse(Wire):
    creation_date: str


# -- records → responses ----------------------------------------------------------------------
def details(user: User) -> Details:
    return Details(
        sequence=str(user.sequence),
        change_date=rfc3339_ms(user.change_ms),
        resource_owner=user.org_id,
    )


def user_details(user: User) -> UserDetails:
    return UserDetails(
        sequence=str(user.sequence),
        change_date=rfc3339_ms(user.change_ms),
        resource_owner=user.org_id,
        creation_date=rfc3339_ms(user.creation_ms),
    )


def human_out(human: Human) -> HumanOut:
    profile, email, phone = human.profile, human.email, human.phone
    changed = rfc3339_ms(human.password_changed_ms) if human.password_changed_ms else None
    return HumanOut(
        profile=ProfileOut(
            given_name=profile.given_name,
            family_name=profile.family_name,
            nick_name=profile.nick_name,
            display_name=profile.display_name,
            preferred_language=profile.preferred_language,
            gender=profile.gender,
        ),
        email=EmailOut(email=email.address, is_verified=email.verified),
        phone=PhoneOut(phone=phone.number, is_verified=phone.verified) if phone else PhoneOut(),
        password_change_required=human.password_change_required,
        password_changed=changed,
    )


def user_out(user: User, login_names: list[str]) -> UserOut:
    machine = user.machine
    return UserOut(
        user_id=user.id,
        details=user_details(user),
        state=user.state,
        username=user.username,
        login_names=login_names,
        preferred_login_name=user.username,
        human=human_out(user.human) if user.human is not None else None,
        machine=MachineOut(name=machine.name, description=machine.description)
        if machine is not None
        else None,
    )
