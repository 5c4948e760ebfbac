"""User API v2 slice that sessions depend on: users, organizations, PATs, administrators.

ZITADEL's JSON names and status codes (AddHumanUser, CreateUser and AddOrganization answer
201). Handlers decode, check the caller's permission on the user's organization, run one
store write and encode. Verification codes are generated here (``secrets``) and only their
hash is stored; a code is returned to the client only when it asked with ``returnCode``.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from actors import tokens
from actors import users as rules
from actors.errors import (
    InvalidArgument,
    NotFound,
    Unimplemented,
    ValidationFailed,
    permission_denied,
)
from actors.permissions import Caller, Grant
from actors.timefmt import parse_rfc3339_ms, rfc3339_ms
from actors.users import Org, User
from app.appkeys import CLOCK, HASHER, PASSWORDS, USER_VIEWS, USERS
from app.http import caller, decode_body, respond
from app.openapi import operation
from app.wire import Details, OptStr200, Str200, Timestamp, Wire
from storage.users import new_id, org_not_found

Code20 = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
#: ZITADEL's email/phone verification generator: 6 of A-Z0-9, valid for one hour.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CODE_LENGTH = 6
CODE_TTL_MS = 3_600_000
Handler = Callable[[web.Request], Awaitable[web.Response]]
Transition = Callable[[User | None, int], rules.Change]


# -- requests ---------------------------------------------------------------------------------
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


class SetPasswordRequest(Wire):
    new_password: PasswordIn
    current_password: Str200 | None = None
    verification_code: Code20 | None = None


class VerifyCodeRequest(Wire):
    verification_code: Code20


class PasswordResetRequest(Wire):
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


class AddPatRequest(Wire):
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


class AddPatResponse(Wire):
    details: Details
    creation_date: str
    token_id: str
    token: str


class CreateAdministratorResponse(Wire):
    creation_date: str


# -- helpers ----------------------------------------------------------------------------------
def _path_user_id(request: web.Request) -> str:
    user_id = request.match_info["userId"]
    if not 1 <= len(user_id) <= 200:
        raise ValidationFailed(
            "invalid request: value length must be between 1 and 200 runes, inclusive - at `userId`"
        )
    return user_id


def _require(who: Caller, permission: str, org_id: str | None) -> None:
    if not who.has(permission, org_id):
        raise permission_denied()


def _details(user: User) -> Details:
    return Details(
        sequence=str(user.sequence),
        change_date=rfc3339_ms(user.change_ms),
        resource_owner=user.org_id,
    )


def _user_details(user: User) -> UserDetails:
    return UserDetails(
        sequence=str(user.sequence),
        change_date=rfc3339_ms(user.change_ms),
        resource_owner=user.org_id,
        creation_date=rfc3339_ms(user.creation_ms),
    )


def _forget_view(request: web.Request, user_id: str) -> None:
    """This worker's cached view of the user is stale now; others expire within the TTL."""
    request.app[USER_VIEWS].invalidate(user_id)


def _code_text() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _verification(
    user_id: str, verified: bool, return_code: bool, now_ms: int
) -> tuple[rules.Code | None, str | None]:
    """(stored code, code for the response); a verified address needs no code."""
    if verified:
        return None, None
    plain = _code_text()
    return rules.new_code(user_id, plain, now_ms + CODE_TTL_MS), plain if return_code else None


async def _existing_user(request: web.Request, user_id: str) -> User:
    user = await request.app[USERS].get_user(user_id)
    if user is None:
        raise NotFound("QUERY-Dfbg2", "Errors.User.NotFound")
    return user


# -- creating users ---------------------------------------------------------------------------
class _Created(msgspec.Struct, frozen=True, kw_only=True):
    user: User
    email_code: str | None = None
    phone_code: str | None = None


def _refuse_unsupported(human: HumanIn) -> None:
    """Never pretend: a client sending these expects them to take effect."""
    pending = [
        name
        for name, value in (("idpLinks", human.idp_links), ("totpSecret", human.totp_secret))
        if value
    ]
    if pending:
        raise Unimplemented(
            "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": pending}
        )
    if human.password is not None and human.hashed_password is not None:
        raise ValidationFailed("invalid request: password and hashedPassword are a oneof")
    email = human.email.email
    local, _, domain = email.partition("@")
    if not local or not domain or " " in email:
        raise InvalidArgument("EMAIL-599BI", "Errors.User.Email.Invalid")


async def _password_hash(request: web.Request, human: HumanIn) -> tuple[str, bool]:
    if human.password is not None:
        hashed = await request.app[HASHER].hash(human.password.password)
        return hashed, human.password.change_required
    if human.hashed_password is not None:
        if not request.app[HASHER].accepts(human.hashed_password.hash):
            raise InvalidArgument("COMMAND-hashAlg", "Errors.User.Password.HashUnsupported")
        return human.hashed_password.hash, human.hashed_password.change_required
    return "", False


def _profile(profile: ProfileIn) -> rules.Profile:
    return rules.Profile(
        given_name=profile.given_name,
        family_name=profile.family_name,
        nick_name=profile.nick_name,
        display_name=profile.display_name,
        preferred_language=profile.preferred_language,
        gender=rules.gender_name(profile.gender),
    )


async def _create_human(
    request: web.Request, org_id: str, user_id: str | None, username: str | None, human: HumanIn
) -> _Created:
    _refuse_unsupported(human)
    now = request.app[CLOCK].now_ms()
    uid = user_id or new_id()
    email_in, phone_in = human.email, human.phone
    email_code, email_plain = _verification(
        uid, email_in.is_verified, email_in.return_code is not None, now
    )
    phone, phone_plain = None, None
    if phone_in is not None and phone_in.phone:
        phone_code, phone_plain = _verification(
            uid, phone_in.is_verified, phone_in.return_code is not None, now
        )
        phone = rules.Phone(number=phone_in.phone, verified=phone_in.is_verified, code=phone_code)
    password_hash, change_required = await _password_hash(request, human)
    spec = rules.HumanSpec(
        user_id=uid,
        org_id=org_id,
        username=username or email_in.email,
        profile=_profile(human.profile),
        phone=phone,
        password_hash=password_hash,
        email=rules.Email(address=email_in.email, verified=email_in.is_verified, code=email_code),
        password_change_required=change_required,
        email_code_returned=email_plain is not None,
        phone_code_returned=phone_plain is not None,
    )
    user = await request.app[USERS].create_user(
        rules.new_human(spec, now), creator_id=caller(request).user_id
    )
    return _Created(user=user, email_code=email_plain, phone_code=phone_plain)


async def _organization(request: web.Request, wanted: Organization | None) -> Org:
    """By id or by domain; the default organization when the request names none."""
    users = request.app[USERS]
    if wanted is not None and wanted.org_id:
        org = await users.get_org(wanted.org_id)
    elif wanted is not None and wanted.org_domain:
        org = await users.org_by_domain(wanted.org_domain)
    else:
        org = await users.get_org(await users.default_org_id())
    if org is None:
        raise org_not_found()
    return org


async def add_human_user(request: web.Request) -> web.Response:
    body = await decode_body(request, AddHumanUserRequest)
    org = await _organization(request, body.organization)
    _require(caller(request), "user.write", org.id)
    created = await _create_human(request, org.id, body.user_id, body.username, body)
    return respond(
        AddHumanUserResponse(
            user_id=created.user.id,
            details=_details(created.user),
            email_code=created.email_code,
            phone_code=created.phone_code,
        ),
        status=201,
    )


async def create_user(request: web.Request) -> web.Response:
    body = await decode_body(request, CreateUserRequest)
    if (body.human is None) == (body.machine is None):
        raise ValidationFailed(
            "invalid CreateUserRequest.UserType: value is required (exactly one of human, machine)"
        )
    org = await _organization(
        request, Organization(org_id=body.organization_id) if body.organization_id else None
    )
    _require(caller(request), "user.write", org.id)
    if body.human is not None:
        created = await _create_human(request, org.id, body.user_id, body.username, body.human)
    else:
        created = await _create_machine(request, org.id, body)
    return respond(
        CreateUserResponse(
            id=created.user.id,
            creation_date=rfc3339_ms(created.user.creation_ms),
            email_code=created.email_code,
            phone_code=created.phone_code,
        ),
        status=201,
    )


async def _create_machine(request: web.Request, org_id: str, body: CreateUserRequest) -> _Created:
    assert body.machine is not None  # noqa: S101 - checked by the caller
    user_id = body.user_id or new_id()
    change = rules.new_machine(
        user_id=user_id,
        org_id=org_id,
        username=body.username or user_id,
        name=body.machine.name,
        description=body.machine.description,
        now_ms=request.app[CLOCK].now_ms(),
    )
    user = await request.app[USERS].create_user(change, creator_id=caller(request).user_id)
    return _Created(user=user)


# -- reading ----------------------------------------------------------------------------------
def _human_out(human: rules.Human) -> HumanOut:
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


def _user_out(user: User, login_names: list[str]) -> UserOut:
    machine = user.machine
    return UserOut(
        user_id=user.id,
        details=_user_details(user),
        state=user.state,
        username=user.username,
        login_names=login_names,
        preferred_login_name=user.username,
        human=_human_out(user.human) if user.human is not None else None,
        machine=MachineOut(name=machine.name, description=machine.description)
        if machine is not None
        else None,
    )


async def get_user(request: web.Request) -> web.Response:
    """Anyone may read themselves; others need ``user.read`` on the user's organization."""
    user = await _existing_user(request, _path_user_id(request))
    who = caller(request)
    if who.user_id != user.id:
        _require(who, "user.read", user.org_id)
    names = await request.app[USERS].login_names(user)
    return respond(GetUserResponse(details=_user_details(user), user=_user_out(user, names)))


# -- changing users ---------------------------------------------------------------------------
def _state_handler(transition: Transition, permission: str, *, allow_self: bool) -> Handler:
    """Deactivate/reactivate/lock/unlock/delete: permission, then the ZITADEL state rules."""

    async def handle(request: web.Request) -> web.Response:
        user_id = _path_user_id(request)
        users, who = request.app[USERS], caller(request)
        user = await users.get_user(user_id)
        if user is not None and not (allow_self and who.user_id == user_id):
            _require(who, permission, user.org_id)
        # A missing user makes the transition raise its own ZITADEL NotFound id.
        updated = await users.mutate(
            user_id,
            transition,
            creator_id=who.user_id,
            release_login_names=transition is rules.remove,
        )
        _forget_view(request, user_id)
        return respond(DetailsResponse(details=_details(updated)))

    return handle


async def set_password(request: web.Request) -> web.Response:
    """SetPassword with one proof: current password, reset code, or permission.

    ``currentPassword``: the user themself (others need user.write); a wrong one counts
    toward the lockout. ``verificationCode``: the reset code. Neither: user.write.
    """
    user_id = _path_user_id(request)
    body = await decode_body(request, SetPasswordRequest)
    if body.current_password is not None and body.verification_code is not None:
        raise ValidationFailed("invalid request: currentPassword and verificationCode are a oneof")
    who, passwords = caller(request), request.app[PASSWORDS]
    user = await _existing_user(request, user_id)
    new = body.new_password
    if body.current_password is not None:
        if who.user_id != user_id:
            _require(who, "user.write", user.org_id)
        updated = await passwords.change_password(
            user_id, body.current_password, new.password, new.change_required
        )
    else:
        if body.verification_code is None:
            _require(who, "user.write", user.org_id)
        updated = await passwords.set_password(
            user_id,
            new.password,
            new.change_required,
            creator_id=who.user_id,
            reset_code=body.verification_code,
        )
    _forget_view(request, user_id)
    return respond(DetailsResponse(details=_details(updated)))


async def password_reset(request: web.Request) -> web.Response:
    """A reset code for SetPassword's ``verificationCode``; returned only with returnCode."""
    user_id = _path_user_id(request)
    body = await decode_body(request, PasswordResetRequest)
    who = caller(request)
    user = await _existing_user(request, user_id)
    if who.user_id != user_id:
        _require(who, "user.write", user.org_id)
    plain = _code_text()
    code = rules.new_code(user_id, plain, request.app[CLOCK].now_ms() + CODE_TTL_MS)
    returned = body.return_code is not None

    def transition(current: User | None, now_ms: int) -> rules.Change:
        return rules.set_password_code(current, code, returned, now_ms)

    updated = await request.app[USERS].mutate(user_id, transition, creator_id=who.user_id)
    return respond(
        PasswordResetResponse(
            details=_details(updated), verification_code=plain if returned else None
        )
    )


def _verify_handler(verify: Callable[[User | None, str, int], rules.Change]) -> Handler:
    """Email/phone verification: the code is the proof, as in ZITADEL (no permission)."""

    async def handle(request: web.Request) -> web.Response:
        user_id = _path_user_id(request)
        body = await decode_body(request, VerifyCodeRequest)

        def transition(user: User | None, now_ms: int) -> rules.Change:
            return verify(user, body.verification_code, now_ms)

        updated = await request.app[USERS].mutate(
            user_id, transition, creator_id=caller(request).user_id
        )
        return respond(DetailsResponse(details=_details(updated)))

    return handle


# -- organizations, PATs, administrators ------------------------------------------------------
async def add_organization(request: web.Request) -> web.Response:
    body = await decode_body(request, AddOrganizationRequest)
    who = caller(request)
    _require(who, "org.create", None)
    if any(admin.human is not None or not admin.user_id for admin in body.admins):
        raise Unimplemented(
            "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": ["admins.human"]}
        )
    users = request.app[USERS]
    for admin in body.admins:  # all checks before the first write: no half-made org
        await _existing_user(request, admin.user_id or "")
    org = await users.create_org(
        body.name, org_id=body.organization_id or body.org_id, creator_id=who.user_id
    )
    admins: list[CreatedAdmin] = []
    for admin in body.admins:
        roles = tuple(admin.roles) or ("ORG_OWNER",)
        granted = await users.add_grant(
            admin.user_id or "", Grant(roles=roles, org_id=org.id), creator_id=who.user_id
        )
        admins.append(CreatedAdmin(user_id=granted.id))
    details = Details(
        sequence=str(org.sequence), change_date=rfc3339_ms(org.creation_ms), resource_owner=org.id
    )
    return respond(
        AddOrganizationResponse(
            details=details, organization_id=org.id, created_admins=tuple(admins)
        ),
        status=201,
    )


def _expiration_ms(text: str | None, now_ms: int) -> int | None:
    if text is None:
        return None
    try:
        expires = parse_rfc3339_ms(text)
    except ValueError:
        raise ValidationFailed(
            "invalid AddPersonalAccessTokenRequest.ExpirationDate: not an RFC 3339 timestamp"
        ) from None
    if expires <= now_ms:
        raise ValidationFailed(
            "invalid AddPersonalAccessTokenRequest.ExpirationDate: must be in the future"
        )
    return expires


async def add_pat(request: web.Request) -> web.Response:
    """A PAT for a machine user; the plain token is in this response and nowhere else."""
    user_id = _path_user_id(request)
    body = await decode_body(request, AddPatRequest)
    who, users = caller(request), request.app[USERS]
    user = await _existing_user(request, user_id)
    _require(who, "user.pat.write", user.org_id)
    now = request.app[CLOCK].now_ms()
    expiration = _expiration_ms(body.expiration_date, now)
    token_id = new_id()
    issued = tokens.issue(
        tokens.PAT_PREFIX, token_id, token_id, secrets.token_bytes(tokens.SECRET_BYTES)
    )
    sequence = await users.add_pat(user_id, issued, expiration, creator_id=who.user_id)
    details = Details(
        sequence=str(sequence), change_date=rfc3339_ms(now), resource_owner=user.org_id
    )
    return respond(
        AddPatResponse(
            details=details, creation_date=rfc3339_ms(now), token_id=token_id, token=issued.plain
        )
    )


async def _grant_scope(request: web.Request, resource: ResourceIn, who: Caller) -> str:
    """The org id of the grant ("" = instance), after the caller's permission check."""
    if resource.project_id or resource.project_grant:
        raise Unimplemented(
            "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": ["resource.project"]}
        )
    if resource.instance == bool(resource.organization_id):
        raise ValidationFailed("invalid ResourceType.Resource: value is required")
    if resource.instance:
        _require(who, "iam.member.write", None)
        return ""
    org_id = resource.organization_id or ""
    if not (who.has("org.member.write", org_id) or who.has("iam.member.write")):
        raise permission_denied()
    if await request.app[USERS].get_org(org_id) is None:
        raise org_not_found()
    return org_id


async def create_administrator(request: web.Request) -> web.Response:
    body = await decode_body(request, CreateAdministratorRequest)
    who = caller(request)
    org_id = await _grant_scope(request, body.resource, who)
    updated = await request.app[USERS].add_grant(
        body.user_id, Grant(roles=tuple(body.roles), org_id=org_id), creator_id=who.user_id
    )
    _forget_view(request, body.user_id)
    return respond(CreateAdministratorResponse(creation_date=rfc3339_ms(updated.change_ms)))


# -- routes -----------------------------------------------------------------------------------
_USER = "/v2/users/{userId}"
ROUTES: list[tuple[str, str, Handler, str, type | None, type, int]] = [
    (
        "POST",
        "/v2/users/human",
        add_human_user,
        "AddHumanUser",
        AddHumanUserRequest,
        AddHumanUserResponse,
        201,
    ),
    (
        "POST",
        "/v2/users/new",
        create_user,
        "CreateUser",
        CreateUserRequest,
        CreateUserResponse,
        201,
    ),
    ("GET", _USER, get_user, "GetUserByID", None, GetUserResponse, 200),
    (
        "POST",
        f"{_USER}/deactivate",
        _state_handler(rules.deactivate, "user.write", allow_self=True),
        "DeactivateUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/reactivate",
        _state_handler(rules.reactivate, "user.write", allow_self=False),
        "ReactivateUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/lock",
        _state_handler(rules.lock, "user.write", allow_self=False),
        "LockUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/unlock",
        _state_handler(rules.unlock, "user.write", allow_self=False),
        "UnlockUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "DELETE",
        _USER,
        _state_handler(rules.remove, "user.delete", allow_self=False),
        "DeleteUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/password",
        set_password,
        "SetPassword",
        SetPasswordRequest,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/password_reset",
        password_reset,
        "PasswordReset",
        PasswordResetRequest,
        PasswordResetResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/email/verify",
        _verify_handler(rules.verify_email),
        "VerifyEmail",
        VerifyCodeRequest,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/phone/verify",
        _verify_handler(rules.verify_phone),
        "VerifyPhone",
        VerifyCodeRequest,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/pats",
        add_pat,
        "AddPersonalAccessToken",
        AddPatRequest,
        AddPatResponse,
        200,
    ),
    (
        "POST",
        "/v2/organizations",
        add_organization,
        "AddOrganization",
        AddOrganizationRequest,
        AddOrganizationResponse,
        201,
    ),
    (
        "POST",
        "/v2/administrators",
        create_administrator,
        "CreateAdministrator",
        CreateAdministratorRequest,
        CreateAdministratorResponse,
        200,
    ),
]

for _method, _path, _handler, _summary, _request, _response, _status in ROUTES:
    operation(_method, _path, _summary, request=_request, response=_response, status=_status)


def setup_user_routes(app: web.Application) -> None:
    for method, path, handler, *_ in ROUTES:
        app.router.add_route(method, path, handler)
