"""User API handlers for organizations and administrators: AddOrganization, CreateAdministrator.

An administrator is a grant of roles on the instance or on one organization; only org and
instance resources are supported (projects answer Unimplemented).
"""

from __future__ import annotations

from aiohttp import web

from actors.errors import Unimplemented, ValidationFailed, permission_denied
from actors.permissions import Caller, Grant
from actors.timefmt import rfc3339_ms
from app.appkeys import USERS
from app.http import caller, decode_body, respond
from app.users_common import existing_user, forget_view, require
from app.users_wire import (
    AddOrganizationRequest,
    AddOrganizationResponse,
    CreateAdministratorRequest,
    CreateAdministratorResponse,
    CreatedAdmin,
    ResourceIn,
)
from app.wire import Details
from storage.orgs import org_not_found


async def add_organization(request: web.Request) -> web.Response:
    body = await decode_body(request, AddOrganizationRequest)
    who = caller(request)
    require(who, "org.create", None)
    if any(admin.human is not None or not admin.user_id for admin in body.admins):
        raise Unimplemented(
            "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": ["admins.human"]}
        )
    users = request.app[USERS]
    for admin in body.admins:  # all checks before the first write: no half-made org
        await existing_user(request, admin.user_id or "")
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


async def _grant_scope(request: web.Request, resource: ResourceIn, who: Caller) -> str:
    """The org id of the grant ("" = instance), after the caller's permission check."""
    if resource.project_id or resource.project_grant:
        raise Unimplemented(
            "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": ["resource.project"]}
        )
    if resource.instance == bool(resource.organization_id):
        raise ValidationFailed("invalid ResourceType.Resource: value is required")
    if resource.instance:
        require(who, "iam.member.write", None)
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
    forget_view(request, body.user_id)
    return respond(CreateAdministratorResponse(creation_date=rfc3339_ms(updated.change_ms)))
