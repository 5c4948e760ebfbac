"""The wire types of the User API v2 slice (ZITADEL's messages) and records → responses.

msgspec Structs (camelCase on the wire via ``Wire``); the OpenAPI document is generated from
them, so they are also the published schema. Pure: no I/O.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from actors.timefmt import rfc3339_ms
from actors.user_records import Human, User
from app.services.session_wire import Details, OptStr200, Str200, Timestamp, Wire

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


class EmailIn(Wire):
    email: Str200
    send_code: SendCode | None = None
    return_code: ReturnCode | None = None
    is_verified: bool = False


class PhoneIn(Wire):
    phone: OptStr200 = ""
    send_code: SendCode | None = None
    return_code: ReturnCode | None = None
    is_verified: bool = False


class ProfileIn(Wire):
    given_name: Str200
    family_name: Str200
    nick_name: OptStr200 = ""
    display_name: OptStr200 = ""
    preferred_language: Annotated[str, msgspec.Meta(max_length=10)] = ""
    gender: str | int | None = None


class PasswordIn(Wire):
    password: Str200
    change_required: bool = False


class HashedPasswordIn(Wire):
    hash: Str200
    change_required: bool = False


class HumanIn(Wire):
    profile: ProfileIn
    email: EmailIn
    phone: PhoneIn | None = None
    password: PasswordIn | None = None
    hashed_password: HashedPasswordIn | None = None
    metadata: tuple[Any, ...] = ()
    idp_links: tuple[Any, ...] = ()
    totp_secret: str | None = None


class AddHumanUserRequest(HumanIn):
    user_id: Str200 | None = None
    username: Str200 | None = None
    organization: Organization | None = None


class MachineIn(Wire):
    name: Str200
    description: OptStr200 = ""


class CreateUserRequest(Wire):
    #: Required in ZITADEL; we fall back to the default organization, like AddHumanUser.
    organization_id: Str200 | None = None
    user_id: Str200 | None = None
    username: Str200 | None = None
    human: HumanIn | None = None
    machine: MachineIn | None = None


class SetPasswordRequest(UserIdRequest, kw_only=True):
    new_password: PasswordIn
    current_password: Str200 | None = None
    verification_code: Code20 | None = None


class VerifyEmailRequest(UserIdRequest, kw_only=True):
    verification_code: Code20


class VerifyPhoneRequest(UserIdRequest, kw_only=True):
    verification_code: Code20


class PasswordResetRequest(UserIdRequest, kw_only=True):
    send_link: dict[str, Any] | None = None
    return_code: ReturnCode | None = None


class OrgAdminIn(Wire):
    user_id: Str200 | None = None
    human: dict[str, Any] | None = None
    roles: tuple[Str200, ...] = ()


class AddOrganizationRequest(Wire):
    name: Str200
    organization_id: Str200 | None = None
    org_id: Str200 | None = None
    admins: tuple[OrgAdminIn, ...] = ()


class AddPersonalAccessTokenRequest(UserIdRequest, kw_only=True):
    expiration_date: Timestamp | None = None


class ResourceIn(Wire):
    instance: bool = False
    organization_id: Str200 | None = None
    project_id: str | None = None
    project_grant: dict[str, Any] | None = None


class CreateAdministratorRequest(Wire):
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
