"""UserService (``zitadel.user.v2.UserService``): the slice of the User API sessions need.

ZITADEL's messages and error ids. Each method checks the caller's permission on the user's
organization and runs one store write. Creating users is in ``app.services.user_creation``,
credentials in ``app.services.user_credentials``, second factors in
``app.services.user_factors``; this module adds reading and the state changes (deactivate,
reactivate, lock, unlock, delete) and composes the service.
"""

from __future__ import annotations

from actors import users as rules
from actors.permissions import Caller
from actors.ports import Clock
from app.services.ids import SecretsMinter
from app.services.intent_ports import IdpLookup
from app.services.messages import MessageComposer
from app.services.passwords import PasswordService
from app.services.ports import Hasher, Transition, UserDirectory
from app.services.sealing import Keyring
from app.services.user_common import require
from app.services.user_creation import UserCreation
from app.services.user_credentials import UserCredentials
from app.services.user_links import UserLinks
from app.services.user_passkeys import WebAuthnConfig
from app.services.user_views import UserViewCache
from app.services.user_wire import (
    DeactivateUserRequest,
    DeleteUserRequest,
    DetailsResponse,
    GetUserByIDRequest,
    GetUserResponse,
    LockUserRequest,
    ReactivateUserRequest,
    UnlockUserRequest,
    UserIdRequest,
    details,
    user_details,
    user_out,
)


class UserService(UserCreation, UserCredentials, UserLinks):
    def __init__(
        self,
        users: UserDirectory,
        passwords: PasswordService,
        hasher: Hasher,
        views: UserViewCache,
        clock: Clock,
        ids: SecretsMinter,
        *,
        keyring: Keyring,
        messages: MessageComposer,
        totp_issuer: str | None = None,
        webauthn: WebAuthnConfig | None = None,
        idps: IdpLookup,
    ) -> None:
        """``totp_issuer``: the instance domain; by default read off the user's org domain."""
        super().__init__(users, hasher, views, clock, ids)
        self._passwords = passwords
        self._keyring = keyring
        self._messages = messages
        self._issuer = totp_issuer
        self._webauthn = webauthn or WebAuthnConfig()
        self._idps = idps

    async def get_user_by_id(self, caller: Caller, request: GetUserByIDRequest) -> GetUserResponse:
        """Anyone may read themselves; others need ``user.read`` on the user's organization."""
        user = await self._existing_user(request.user_id)
        if caller.user_id != user.id:
            require(caller, "user.read", user.org_id)
        names = await self._users.login_names(user)
        return GetUserResponse(details=user_details(user), user=user_out(user, names))

    async def deactivate_user(
        self, caller: Caller, request: DeactivateUserRequest
    ) -> DetailsResponse:
        return await self._change_state(caller, request, rules.deactivate, allow_self=True)

    async def reactivate_user(
        self, caller: Caller, request: ReactivateUserRequest
    ) -> DetailsResponse:
        return await self._change_state(caller, request, rules.reactivate)

    async def lock_user(self, caller: Caller, request: LockUserRequest) -> DetailsResponse:
        return await self._change_state(caller, request, rules.lock)

    async def unlock_user(self, caller: Caller, request: UnlockUserRequest) -> DetailsResponse:
        return await self._change_state(caller, request, rules.unlock)

    async def delete_user(self, caller: Caller, request: DeleteUserRequest) -> DetailsResponse:
        return await self._change_state(
            caller, request, rules.remove, permission="user.delete", release_login_names=True
        )

    async def _change_state(
        self,
        caller: Caller,
        request: UserIdRequest,
        transition: Transition,
        *,
        permission: str = "user.write",
        allow_self: bool = False,
        release_login_names: bool = False,
    ) -> DetailsResponse:
        """Permission, then the ZITADEL state rules of ``transition``."""
        user_id = request.user_id
        user = await self._users.get_user(user_id)
        if user is not None and not (allow_self and caller.user_id == user_id):
            require(caller, permission, user.org_id)
        # A missing user makes the transition raise its own ZITADEL NotFound id.
        updated = await self._users.mutate(
            user_id,
            transition,
            creator_id=caller.user_id,
            release_login_names=release_login_names,
        )
        self._forget_view(user_id)
        return DetailsResponse(details=details(updated))
