"""OrganizationService (``zitadel.org.v2``): AddOrganization, with its admins."""

from __future__ import annotations

from actors.errors import AlreadyExists, Unimplemented
from actors.permissions import Caller, Grant
from actors.timefmt import rfc3339_ms
from app.services.session_wire import Details
from app.services.user_common import UserServiceBase, require
from app.services.user_wire import (
    AddOrganizationRequest,
    AddOrganizationResponse,
    CreatedAdmin,
)


class OrganizationService(UserServiceBase):
    async def add_organization(
        self, caller: Caller, request: AddOrganizationRequest
    ) -> AddOrganizationResponse:
        require(caller, "org.create", None)
        if any(admin.human is not None or not admin.user_id for admin in request.admins):
            raise Unimplemented(
                "USERS-notYet", "Errors.User.NotSupported", extra={"unsupported": ["admins.human"]}
            )
        admin_ids = [admin.user_id or "" for admin in request.admins]
        if len(set(admin_ids)) != len(admin_ids):
            # ZITADEL's second grant of one user on the new org fails its whole command; here
            # it is refused before the first write, so no half-made org is left
            raise AlreadyExists("COMMAND-PtXi1", "Errors.Member.AlreadyExists")
        for user_id in admin_ids:  # all checks before the first write: no half-made org
            await self._existing_user(user_id)
        org = await self._users.create_org(
            request.name,
            org_id=request.organization_id or request.org_id,
            creator_id=caller.user_id,
        )
        admins: list[CreatedAdmin] = []
        for admin in request.admins:
            roles = tuple(admin.roles) or ("ORG_OWNER",)
            granted = await self._users.add_grant(
                admin.user_id or "", Grant(roles=roles, org_id=org.id), creator_id=caller.user_id
            )
            self._forget_view(granted.id)
            admins.append(CreatedAdmin(user_id=granted.id))
        org_details = Details(
            sequence=str(org.sequence),
            change_date=rfc3339_ms(org.creation_ms),
            resource_owner=org.id,
        )
        return AddOrganizationResponse(
            details=org_details, organization_id=org.id, created_admins=tuple(admins)
        )
