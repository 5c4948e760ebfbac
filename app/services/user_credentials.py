"""User API credentials: SetPassword, PasswordReset, email/phone verification, PATs.

Verification codes are generated here and only their hash is stored; a code is returned to
the client only when it asked with ``returnCode``. A PAT's plain token appears in the
AddPersonalAccessToken response and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from actors import users as rules
from actors.errors import ValidationFailed
from actors.permissions import Caller
from actors.timefmt import parse_rfc3339_ms, rfc3339_ms
from actors.user_records import User
from app.services.passwords import PasswordService
from app.services.session_wire import Details
from app.services.user_common import CODE_TTL_MS, UserServiceBase, code_text, require
from app.services.user_wire import (
    AddPersonalAccessTokenRequest,
    AddPersonalAccessTokenResponse,
    DetailsResponse,
    PasswordResetRequest,
    PasswordResetResponse,
    SetPasswordRequest,
    VerifyEmailRequest,
    VerifyPhoneRequest,
    details,
)

Verify = Callable[[User | None, str, int], rules.Change]


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


class UserCredentials(UserServiceBase):
    _passwords: PasswordService

    async def set_password(self, caller: Caller, request: SetPasswordRequest) -> DetailsResponse:
        """SetPassword with one proof: current password, reset code, or permission.

        ``currentPassword``: the user themself (others need user.write); a wrong one counts
        toward the lockout. ``verificationCode``: the reset code. Neither: user.write.
        """
        user_id = request.user_id
        if request.current_password is not None and request.verification_code is not None:
            raise ValidationFailed(
                "invalid request: currentPassword and verificationCode are a oneof"
            )
        user = await self._existing_user(user_id)
        new = request.new_password
        if request.current_password is not None:
            if caller.user_id != user_id:
                require(caller, "user.write", user.org_id)
            updated = await self._passwords.change_password(
                user_id,
                request.current_password,
                new.password,
                new.change_required,
                caller=caller,
            )
        else:
            if request.verification_code is None:
                require(caller, "user.write", user.org_id)
            updated = await self._passwords.set_password(
                user_id,
                new.password,
                new.change_required,
                creator_id=caller.user_id,
                reset_code=request.verification_code,
            )
        self._forget_view(user_id)
        return DetailsResponse(details=details(updated))

    async def password_reset(
        self, caller: Caller, request: PasswordResetRequest
    ) -> PasswordResetResponse:
        """A reset code for SetPassword's ``verificationCode``; returned only with returnCode."""
        user_id = request.user_id
        user = await self._existing_user(user_id)
        if caller.user_id != user_id:
            require(caller, "user.write", user.org_id)
        plain = code_text()
        code = rules.new_code(user_id, plain, self._clock.now_ms() + CODE_TTL_MS)
        returned = request.return_code is not None

        def transition(current: User | None, now_ms: int) -> rules.Change:
            return rules.set_password_code(current, code, returned, now_ms)

        updated = await self._users.mutate(user_id, transition, creator_id=caller.user_id)
        return PasswordResetResponse(
            details=details(updated), verification_code=plain if returned else None
        )

    async def verify_email(self, caller: Caller, request: VerifyEmailRequest) -> DetailsResponse:
        """The code is the proof, as in ZITADEL (no permission)."""
        return await self._verify(
            caller, request.user_id, request.verification_code, rules.verify_email
        )

    async def verify_phone(self, caller: Caller, request: VerifyPhoneRequest) -> DetailsResponse:
        return await self._verify(
            caller, request.user_id, request.verification_code, rules.verify_phone
        )

    async def _verify(
        self, caller: Caller, user_id: str, code: str, verify: Verify
    ) -> DetailsResponse:
        def transition(user: User | None, now_ms: int) -> rules.Change:
            return verify(user, code, now_ms)

        updated = await self._users.mutate(user_id, transition, creator_id=caller.user_id)
        return DetailsResponse(details=details(updated))

    async def add_personal_access_token(
        self, caller: Caller, request: AddPersonalAccessTokenRequest
    ) -> AddPersonalAccessTokenResponse:
        """A PAT for a machine user; the plain token is in this response and nowhere else."""
        user_id = request.user_id
        user = await self._existing_user(user_id)
        require(caller, "user.pat.write", user.org_id)
        now = self._clock.now_ms()
        expiration = _expiration_ms(request.expiration_date, now)
        issued = self._ids.pat()
        sequence = await self._users.add_pat(user_id, issued, expiration, creator_id=caller.user_id)
        pat_details = Details(
            sequence=str(sequence), change_date=rfc3339_ms(now), resource_owner=user.org_id
        )
        return AddPersonalAccessTokenResponse(
            details=pat_details,
            creation_date=rfc3339_ms(now),
            token_id=issued.token_id,
            token=issued.plain,
        )
