"""InternalPermissionService (``zitadel.internal_permission.v2``): CreateAdministrator.

An administrator is a grant of roles on the instance or on one organization; only those two
resources are supported (projects answer Unimplemented).
"""

from __future__ import annotations

from actors.errors import Unimplemented, ValidationFailed, permission_denied
from actors.permissions import Caller, Grant
from actors.timefmt import rfc3339_ms
from actors.user_records import org_not_found
from app.services.user_common import UserServiceBase, require
from app.services.user_wire import (
    CreateAdministratorRequest,
    CreateAdministratorResponse,
    ResourceIn,
)


class InternalPermissionService(UserServiceBase):
    async def create_administrator(
        self, caller: Caller, request: CreateAdministratorRequest
    ) -> CreateAdministratorResponse:
        org_id = await self._grant_scope(request.resource, caller)
        updated = await self._users.add_grant(
            request.user_id,
            Grant(roles=tuple(request.roles), org_id=org_id),
            creator_id=caller.user_id,
        )
        self._forget_view(request.user_id)
        return CreateAdministratorResponse(creation_date=rfc3339_ms(updated.change_ms))

    async def _grant_scope(self, resource: ResourceIn, who: Caller) -> str:
        """The org id of the grant ("" = instance), after the caller's permission check."""
        if resource.project_id or resource.project_grant:
            raise Unimplemented(
                "USERS-notYet",
                "Errors.User.NotSupported",
                extra={"unsupported": ["resource.projectId"]},
            )
        if resource.instance == bool(resource.organization_id):
            raise ValidationFailed("invalid ResourceType.Resource: value is required")
        if resource.instance:
            require(who, "iam.member.write", None)
            return ""
        org_id = resource.organization_id or ""
        if not (who.has("org.member.write", org_id) or who.has("iam.member.write")):
            raise permission_denied()
        if await self._users.get_org(org_id) is None:
            raise org_not_found()
        return org_id
