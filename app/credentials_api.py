"""User API handlers for credentials: SetPassword, PasswordReset, email/phone verification, PATs.

Verification codes are generated here and only their hash is stored; a code is returned to
the client only when it asked with ``returnCode``. A PAT's plain token appears in the
AddPersonalAccessToken response and nowhere else.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from aiohttp import web

from actors import tokens
from actors import users as rules
from actors.errors import ValidationFailed
from actors.timefmt import parse_rfc3339_ms, rfc3339_ms
from actors.user_records import User
from app.appkeys import CLOCK, PASSWORDS, USERS
from app.http import caller, decode_body, respond
from app.users_common import (
    CODE_TTL_MS,
    Handler,
    code_text,
    existing_user,
    forget_view,
    path_user_id,
    require,
)
from app.users_wire import (
    AddPatRequest,
    AddPatResponse,
    DetailsResponse,
    PasswordResetRequest,
    PasswordResetResponse,
    SetPasswordRequest,
    VerifyCodeRequest,
    details,
)
from app.wire import Details
from storage.user_base import new_id


async def set_password(request: web.Request) -> web.Response:
    """SetPassword with one proof: current password, reset code, or permission.

    ``currentPassword``: the user themself (others need user.write); a wrong one counts
    toward the lockout. ``verificationCode``: the reset code. Neither: user.write.
    """
    user_id = path_user_id(request)
    body = await decode_body(request, SetPasswordRequest)
    if body.current_password is not None and body.verification_code is not None:
        raise ValidationFailed("invalid request: currentPassword and verificationCode are a oneof")
    who, passwords = caller(request), request.app[PASSWORDS]
    user = await existing_user(request, user_id)
    new = body.new_password
    if body.current_password is not None:
        if who.user_id != user_id:
            require(who, "user.write", user.org_id)
        updated = await passwords.change_password(
            user_id, body.current_password, new.password, new.change_required
        )
    else:
        if body.verification_code is None:
            require(who, "user.write", user.org_id)
        updated = await passwords.set_password(
            user_id,
            new.password,
            new.change_required,
            creator_id=who.user_id,
            reset_code=body.verification_code,
        )
    forget_view(request, user_id)
    return respond(DetailsResponse(details=details(updated)))


async def password_reset(request: web.Request) -> web.Response:
    """A reset code for SetPassword's ``verificationCode``; returned only with returnCode."""
    user_id = path_user_id(request)
    body = await decode_body(request, PasswordResetRequest)
    who = caller(request)
    user = await existing_user(request, user_id)
    if who.user_id != user_id:
        require(who, "user.write", user.org_id)
    plain = code_text()
    code = rules.new_code(user_id, plain, request.app[CLOCK].now_ms() + CODE_TTL_MS)
    returned = body.return_code is not None

    def transition(current: User | None, now_ms: int) -> rules.Change:
        return rules.set_password_code(current, code, returned, now_ms)

    updated = await request.app[USERS].mutate(user_id, transition, creator_id=who.user_id)
    return respond(
        PasswordResetResponse(
            details=details(updated), verification_code=plain if returned else None
        )
    )


def verify_handler(verify: Callable[[User | None, str, int], rules.Change]) -> Handler:
    """Email/phone verification: the code is the proof, as in ZITADEL (no permission)."""

    async def handle(request: web.Request) -> web.Response:
        user_id = path_user_id(request)
        body = await decode_body(request, VerifyCodeRequest)

        def transition(user: User | None, now_ms: int) -> rules.Change:
            return verify(user, body.verification_code, now_ms)

        updated = await request.app[USERS].mutate(
            user_id, transition, creator_id=caller(request).user_id
        )
        return respond(DetailsResponse(details=details(updated)))

    return handle


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
    user_id = path_user_id(request)
    body = await decode_body(request, AddPatRequest)
    who, users = caller(request), request.app[USERS]
    user = await existing_user(request, user_id)
    require(who, "user.pat.write", user.org_id)
    now = request.app[CLOCK].now_ms()
    expiration = _expiration_ms(body.expiration_date, now)
    token_id = new_id()
    issued = tokens.issue(
        tokens.PAT_PREFIX, token_id, token_id, secrets.token_bytes(tokens.SECRET_BYTES)
    )
    sequence = await users.add_pat(user_id, issued, expiration, creator_id=who.user_id)
    pat_details = Details(
        sequence=str(sequence), change_date=rfc3339_ms(now), resource_owner=user.org_id
    )
    return respond(
        AddPatResponse(
            details=pat_details,
            creation_date=rfc3339_ms(now),
            token_id=token_id,
            token=issued.plain,
        )
    )
