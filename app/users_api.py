"""User API v2 slice that sessions depend on: the routes, and the user lifecycle handlers.

ZITADEL's JSON names and status codes (AddHumanUser, CreateUser and AddOrganization answer
201). Handlers decode, check the caller's permission on the user's organization, run one
store write and encode. This module has the route table (and registers every operation for
the OpenAPI document) and the handlers that create, read and change the state of a user; the
credential handlers are in ``app.credentials_api``, organizations and administrators in
``app.orgs_api``, the wire types in ``app.users_wire``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from actors import users as rules
from actors.errors import ValidationFailed
from actors.timefmt import rfc3339_ms
from actors.user_records import User
from app.appkeys import USERS
from app.credentials_api import add_pat, password_reset, set_password, verify_handler
from app.http import caller, decode_body, respond
from app.openapi import operation
from app.orgs_api import add_organization, create_administrator
from app.user_creation import create_human, create_machine, organization
from app.users_common import Handler, existing_user, forget_view, path_user_id, require
from app.users_wire import (
    AddHumanUserRequest,
    AddHumanUserResponse,
    AddOrganizationRequest,
    AddOrganizationResponse,
    AddPatRequest,
    AddPatResponse,
    CreateAdministratorRequest,
    CreateAdministratorResponse,
    CreateUserRequest,
    CreateUserResponse,
    DetailsResponse,
    GetUserResponse,
    Organization,
    PasswordResetRequest,
    PasswordResetResponse,
    SetPasswordRequest,
    VerifyCodeRequest,
    details,
    user_details,
    user_out,
)

Transition = Callable[[User | None, int], rules.Change]


# -- creating users ---------------------------------------------------------------------------
async def add_human_user(request: web.Request) -> web.Response:
    body = await decode_body(request, AddHumanUserRequest)
    org = await organization(request, body.organization)
    require(caller(request), "user.write", org.id)
    created = await create_human(request, org.id, body.user_id, body.username, body)
    return respond(
        AddHumanUserResponse(
            user_id=created.user.id,
            details=details(created.user),
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
    org = await organization(
        request, Organization(org_id=body.organization_id) if body.organization_id else None
    )
    require(caller(request), "user.write", org.id)
    if body.human is not None:
        created = await create_human(request, org.id, body.user_id, body.username, body.human)
    else:
        created = await create_machine(request, org.id, body)
    return respond(
        CreateUserResponse(
            id=created.user.id,
            creation_date=rfc3339_ms(created.user.creation_ms),
            email_code=created.email_code,
            phone_code=created.phone_code,
        ),
        status=201,
    )


# -- reading ----------------------------------------------------------------------------------
async def get_user(request: web.Request) -> web.Response:
    """Anyone may read themselves; others need ``user.read`` on the user's organization."""
    user = await existing_user(request, path_user_id(request))
    who = caller(request)
    if who.user_id != user.id:
        require(who, "user.read", user.org_id)
    names = await request.app[USERS].login_names(user)
    return respond(GetUserResponse(details=user_details(user), user=user_out(user, names)))


# -- changing users ---------------------------------------------------------------------------
def state_handler(transition: Transition, permission: str, *, allow_self: bool) -> Handler:
    """Deactivate/reactivate/lock/unlock/delete: permission, then the ZITADEL state rules."""

    async def handle(request: web.Request) -> web.Response:
        user_id = path_user_id(request)
        users, who = request.app[USERS], caller(request)
        user = await users.get_user(user_id)
        if user is not None and not (allow_self and who.user_id == user_id):
            require(who, permission, user.org_id)
        # A missing user makes the transition raise its own ZITADEL NotFound id.
        updated = await users.mutate(
            user_id,
            transition,
            creator_id=who.user_id,
            release_login_names=transition is rules.remove,
        )
        forget_view(request, user_id)
        return respond(DetailsResponse(details=details(updated)))

    return handle


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
        state_handler(rules.deactivate, "user.write", allow_self=True),
        "DeactivateUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/reactivate",
        state_handler(rules.reactivate, "user.write", allow_self=False),
        "ReactivateUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/lock",
        state_handler(rules.lock, "user.write", allow_self=False),
        "LockUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/unlock",
        state_handler(rules.unlock, "user.write", allow_self=False),
        "UnlockUser",
        None,
        DetailsResponse,
        200,
    ),
    (
        "DELETE",
        _USER,
        state_handler(rules.remove, "user.delete", allow_self=False),
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
        verify_handler(rules.verify_email),
        "VerifyEmail",
        VerifyCodeRequest,
        DetailsResponse,
        200,
    ),
    (
        "POST",
        f"{_USER}/phone/verify",
        verify_handler(rules.verify_phone),
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
