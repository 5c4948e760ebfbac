"""User API credentials: SetPassword, PasswordReset, email/phone verification, PATs.

Verification codes are generated here and only their hash is stored; a code is returned to
the client only when it asked with ``returnCode``. A PAT's plain token appears in the
AddPersonalAccessToken response and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from actors import url_templates
from actors import users as rules
from actors.delivery import DeliveryJob
from actors.errors import FailedPrecondition, ValidationFailed
from actors.permissions import Caller
from actors.timefmt import parse_rfc3339_ms, rfc3339_ms
from actors.user_records import User
from app.services.messages import MessageComposer
from app.services.passwords import PasswordService
from app.services.session_wire import Details
from app.services.user_common import CODE_TTL_MS, UserServiceBase, code_text, require
from app.services.user_wire import (
    NOTIFICATION_TYPES,
    AddPersonalAccessTokenRequest,
    AddPersonalAccessTokenResponse,
    DetailsResponse,
    PasswordResetRequest,
    PasswordResetResponse,
    SendLink,
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
    _messages: MessageComposer

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
        if request.send_link is not None and request.return_code is not None:
            raise ValidationFailed("invalid request: sendLink and returnCode are a oneof")
        plain = code_text()
        code = rules.new_code(user_id, plain, self._clock.now_ms() + CODE_TTL_MS)
        returned = request.return_code is not None
        jobs = [self._reset_job(user, request.send_link, plain)] if request.send_link else []

        def transition(current: User | None, now_ms: int) -> rules.Change:
            return rules.set_password_code(current, code, returned, now_ms)

        updated = await self._users.mutate(
            user_id, transition, creator_id=caller.user_id, jobs=jobs
        )
        return PasswordResetResponse(
            details=details(updated), verification_code=plain if returned else None
        )

    def _reset_job(self, user: User, link: SendLink, code: str) -> DeliveryJob:
        """The reset message on the requested channel; its link template is checked now."""
        if link.url_template:
            url_templates.validate(link.url_template, url_templates.USER_FIELDS)
        kind = link.notification_type
        sms = kind in (2, "NOTIFICATION_TYPE_SMS")
        if not sms and kind not in (0, 1, *NOTIFICATION_TYPES[:2]):
            raise ValidationFailed(
                "invalid SendPasswordResetLink.NotificationType: value must be one of the"
                " defined enum values"
            )
        human = user.human
        if human is None:
            raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
        recipient = human.email.address
        if sms:
            if human.phone is None:
                raise FailedPrecondition("COMMAND-2M9fs", "Errors.User.Phone.NotFound")
            recipient = human.phone.number
        return self._messages.compose(
            user,
            channel="sms" if sms else "email",
            template="password_reset",
            recipient=recipient,
            code=code,
            url_template=link.url_template,
            sent_event="user.human.password.code.sent",
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
