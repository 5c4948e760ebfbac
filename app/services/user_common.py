"""What the User API's services share: dependencies, permission checks, user lookup, codes.

Verification codes are generated here (``secrets``) and only their hash is stored
(``actors.codes``).
"""

from __future__ import annotations

import secrets

from actors.errors import NotFound, permission_denied
from actors.permissions import Caller
from actors.ports import Clock
from actors.user_records import User
from app.services.ids import SecretsMinter
from app.services.ports import Hasher, UserDirectory
from app.services.user_views import UserViewCache

#: ZITADEL's email/phone verification generator: 6 of A-Z0-9, valid for one hour.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CODE_LENGTH = 6
CODE_TTL_MS = 3_600_000


def require(who: Caller, permission: str, org_id: str | None) -> None:
    if not who.has(permission, org_id):
        raise permission_denied()


def code_text() -> str:
    """A fresh plain verification code (the caller stores only its hash)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class UserServiceBase:
    """The dependencies every user-side service method works with."""

    def __init__(
        self,
        users: UserDirectory,
        hasher: Hasher,
        views: UserViewCache,
        clock: Clock,
        ids: SecretsMinter,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._views = views
        self._clock = clock
        self._ids = ids

    def _forget_view(self, user_id: str) -> None:
        """This worker's cached view of the user is stale now; others expire within the TTL."""
        self._views.invalidate(user_id)

    async def _existing_user(self, user_id: str) -> User:
        user = await self._users.get_user(user_id)
        if user is None:
            raise NotFound("QUERY-Dfbg2", "Errors.User.NotFound")
        return user
