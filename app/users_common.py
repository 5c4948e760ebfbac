"""What every User API handler shares: the path's user id, permission checks, user lookup.

Also the verification codes handlers hand out: generated here (``secrets``), and only their
hash is stored (``actors.codes``).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from actors.errors import NotFound, ValidationFailed, permission_denied
from actors.permissions import Caller
from actors.user_records import User
from app.appkeys import USER_VIEWS, USERS

#: ZITADEL's email/phone verification generator: 6 of A-Z0-9, valid for one hour.
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
CODE_LENGTH = 6
CODE_TTL_MS = 3_600_000
Handler = Callable[[web.Request], Awaitable[web.Response]]


def path_user_id(request: web.Request) -> str:
    user_id = request.match_info["userId"]
    if not 1 <= len(user_id) <= 200:
        raise ValidationFailed(
            "invalid request: value length must be between 1 and 200 runes, inclusive - at `userId`"
        )
    return user_id


def require(who: Caller, permission: str, org_id: str | None) -> None:
    if not who.has(permission, org_id):
        raise permission_denied()


def forget_view(request: web.Request, user_id: str) -> None:
    """This worker's cached view of the user is stale now; others expire within the TTL."""
    request.app[USER_VIEWS].invalidate(user_id)


async def existing_user(request: web.Request, user_id: str) -> User:
    user = await request.app[USERS].get_user(user_id)
    if user is None:
        raise NotFound("QUERY-Dfbg2", "Errors.User.NotFound")
    return user


def code_text() -> str:
    """A fresh plain verification code (the caller stores only its hash)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
