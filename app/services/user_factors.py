"""User API second factors: TOTP, OTP SMS / Email, recovery codes, the ready methods.

The caller is the user itself (a session token as bearer: the login UI registering its
user's factors) or holds ``user.write`` (``user.read`` to list) on the user's organization.
Secrets are drawn here: the TOTP seed is sealed under the master key before it is stored and
is returned once, by RegisterTOTP; recovery codes are returned once, by
GenerateRecoveryCodes, and stored only as keyed hashes. Neither ever reaches an event, a log
line or an error.
"""

from __future__ import annotations

import secrets

import pyotp

from actors import users as rules
from actors.errors import Internal
from actors.permissions import Caller
from actors.timefmt import rfc3339_ms
from actors.user_records import User
from app.services.factor_wire import (
    AddOTPEmailRequest,
    AddOTPSMSRequest,
    GenerateRecoveryCodesRequest,
    GenerateRecoveryCodesResponse,
    ListAuthenticationMethodTypesRequest,
    ListAuthenticationMethodTypesResponse,
    RegisterTOTPRequest,
    RegisterTOTPResponse,
    RemoveOTPEmailRequest,
    RemoveOTPSMSRequest,
    RemoveRecoveryCodesRequest,
    RemoveTOTPRequest,
    VerifyTOTPRegistrationRequest,
)
from app.services.ports import Transition
from app.services.sealing import Keyring, SealError
from app.services.session_wire import ListDetails
from app.services.user_common import UserServiceBase, require
from app.services.user_wire import DetailsResponse, UserIdRequest, details

#: ZITADEL's recovery code generator: alphanumeric, 10 characters, a hyphen in the middle.
RECOVERY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
RECOVERY_CODE_LENGTH = 10


def totp_purpose(user_id: str) -> str:
    """The sealing purpose of a user's TOTP seed (the session check opens it with it)."""
    return f"totp:{user_id}"


def recovery_purpose(user_id: str) -> str:
    """The keyed-hash purpose of a user's recovery codes (the session check matches it)."""
    return f"recovery-code:{user_id}"


def recovery_code_text() -> str:
    """A fresh plain recovery code such as ``A1B2C-3D4E5``."""
    chars = [secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH)]
    half = RECOVERY_CODE_LENGTH // 2
    return "".join(chars[:half]) + "-" + "".join(chars[half:])


class UserFactors(UserServiceBase):
    _keyring: Keyring
    #: The TOTP issuer (the instance domain); None: taken from the user's org domain.
    _issuer: str | None

    async def register_totp(
        self, caller: Caller, request: RegisterTOTPRequest
    ) -> RegisterTOTPResponse:
        """A new unverified seed; the plain seed is in this response and nowhere else."""
        user = await self._permitted(caller, request.user_id)
        secret = pyotp.random_base32()
        sealed = self._keyring.seal(totp_purpose(user.id), secret.encode())

        def transition(current: User | None, now_ms: int) -> rules.Change:
            return rules.register_totp(current, sealed, now_ms)

        updated = await self._users.mutate(user.id, transition, creator_id=caller.user_id)
        self._forget_view(user.id)
        issuer = self._issuer or await self._org_issuer(user)
        return RegisterTOTPResponse(
            details=details(updated),
            uri=rules.totp_uri(secret, user.username, issuer),
            secret=secret,
        )

    async def verify_totp_registration(
        self, caller: Caller, request: VerifyTOTPRegistrationRequest
    ) -> DetailsResponse:
        user_id, code = request.user_id, request.code
        await self._permitted(caller, user_id)

        def transition(current: User | None, now_ms: int) -> rules.Change:
            return rules.verify_totp_registration(current, self._totp_secret(current), code, now_ms)

        return await self._write(caller, user_id, transition)

    async def remove_totp(self, caller: Caller, request: RemoveTOTPRequest) -> DetailsResponse:
        return await self._change(caller, request, rules.remove_totp)

    async def add_otp_sms(self, caller: Caller, request: AddOTPSMSRequest) -> DetailsResponse:
        return await self._change(caller, request, rules.add_otp_sms)

    async def remove_otp_sms(self, caller: Caller, request: RemoveOTPSMSRequest) -> DetailsResponse:
        return await self._change(caller, request, rules.remove_otp_sms)

    async def add_otp_email(self, caller: Caller, request: AddOTPEmailRequest) -> DetailsResponse:
        return await self._change(caller, request, rules.add_otp_email)

    async def remove_otp_email(
        self, caller: Caller, request: RemoveOTPEmailRequest
    ) -> DetailsResponse:
        return await self._change(caller, request, rules.remove_otp_email)

    async def generate_recovery_codes(
        self, caller: Caller, request: GenerateRecoveryCodesRequest
    ) -> GenerateRecoveryCodesResponse:
        """A new set replacing the old; the plain codes are in this response only."""
        user = await self._permitted(caller, request.user_id)
        rules.check_recovery_code_count(request.count)
        plain = [recovery_code_text() for _ in range(request.count)]
        purpose = recovery_purpose(user.id)
        digests = tuple(self._keyring.digest(purpose, code) for code in plain)

        def transition(current: User | None, now_ms: int) -> rules.Change:
            return rules.set_recovery_codes(current, digests, now_ms)

        updated = await self._users.mutate(user.id, transition, creator_id=caller.user_id)
        self._forget_view(user.id)
        return GenerateRecoveryCodesResponse(details=details(updated), recovery_codes=plain)

    async def remove_recovery_codes(
        self, caller: Caller, request: RemoveRecoveryCodesRequest
    ) -> DetailsResponse:
        return await self._change(caller, request, rules.remove_recovery_codes)

    async def list_authentication_method_types(
        self, caller: Caller, request: ListAuthenticationMethodTypesRequest
    ) -> ListAuthenticationMethodTypesResponse:
        user = await self._permitted(caller, request.user_id, "user.read")
        methods = rules.auth_method_types(user)
        return ListAuthenticationMethodTypesResponse(
            details=ListDetails(
                total_result=str(len(methods)),
                processed_sequence=str(user.sequence),
                timestamp=rfc3339_ms(self._clock.now_ms()),
            ),
            auth_method_types=tuple(methods),
        )

    # -- shared steps --------------------------------------------------------------------
    async def _permitted(
        self, caller: Caller, user_id: str, permission: str = "user.write"
    ) -> User:
        """The user, if the caller is that user or holds ``permission`` on its organization."""
        user = await self._existing_user(user_id)
        if caller.user_id != user.id:
            require(caller, permission, user.org_id)
        return user

    async def _change(
        self, caller: Caller, request: UserIdRequest, transition: Transition
    ) -> DetailsResponse:
        await self._permitted(caller, request.user_id)
        return await self._write(caller, request.user_id, transition)

    async def _write(self, caller: Caller, user_id: str, transition: Transition) -> DetailsResponse:
        updated = await self._users.mutate(user_id, transition, creator_id=caller.user_id)
        self._forget_view(user_id)  # whether a second factor is ready decides bearer rules
        return DetailsResponse(details=details(updated))

    def _totp_secret(self, user: User | None) -> str:
        """The registered seed in clear ("" when there is none), for checking a code."""
        if user is None or user.human is None or user.human.factors.totp is None:
            return ""
        sealed = user.human.factors.totp.sealed_secret
        try:
            return self._keyring.open(totp_purpose(user.id), sealed).decode()
        except SealError:  # sealed under a key no longer configured
            raise Internal("USERS-totpSeal", "Errors.Internal") from None

    async def _org_issuer(self, user: User) -> str:
        org = await self._users.get_org(user.org_id)
        return rules.totp_issuer(org.domain) if org is not None else ""
