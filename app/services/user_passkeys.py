"""User API passkeys and U2F keys: registration, listing, removal, registration links.

A registration is two calls: Register* hands out creation options with a fresh challenge
(a pending token, valid five minutes), Verify* checks the browser's response with
py_webauthn and makes the token ready; the challenge is used by the first verification,
whatever its outcome. The caller is the user (its session token as bearer) or holds
``user.write`` on the user's organization; a registration code (CreatePasskeyRegistrationLink)
lets any authenticated caller — the login client — register a passkey for a user who has no
session yet. Codes are stored as keyed hashes and shown once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from actors import url_templates
from actors import webauthn_tokens as rules
from actors.delivery import DeliveryJob
from actors.errors import FailedPrecondition, ServiceError, ValidationFailed, permission_denied
from actors.permissions import Caller
from actors.timefmt import rfc3339_ms
from actors.user_records import PASSKEY, U2F, Change, User
from actors.users import display_name
from app.services import webauthn_ceremony as ceremony
from app.services.messages import MessageComposer
from app.services.passkey_wire import (
    AUTHENTICATORS,
    CreatePasskeyRegistrationLinkRequest,
    CreatePasskeyRegistrationLinkResponse,
    ListPasskeysRequest,
    ListPasskeysResponse,
    Passkey,
    PasskeyRegistrationCode,
    RegisterPasskeyRequest,
    RegisterPasskeyResponse,
    RegisterU2FRequest,
    RegisterU2FResponse,
    RemovePasskeyRequest,
    RemoveU2FRequest,
    VerifyPasskeyRegistrationRequest,
    VerifyU2FRegistrationRequest,
)
from app.services.session_wire import ListDetails
from app.services.user_factors import RECOVERY_ALPHABET, UserFactors
from app.services.user_wire import DetailsResponse, details

#: ZITADEL's ``PasswordlessInitCode`` generator: 12 alphanumeric characters.
REGISTRATION_CODE_LENGTH = 12
_READY = "AUTH_FACTOR_STATE_READY"
_NOT_READY = "AUTH_FACTOR_STATE_NOT_READY"


@dataclass(frozen=True)
class WebAuthnConfig:
    """The relying party: the accepted origins, and the name authenticators show."""

    origins: tuple[str, ...] = ()
    rp_name: str = "sessiond"

    def default_rp_id(self) -> str:
        """The host of the first origin: the RP id when a request names no ``domain``."""
        host = urlsplit(self.origins[0]).hostname if self.origins else None
        if not host:  # a configuration the request cannot fix
            raise FailedPrecondition("WEBAU-noOrigin", "Errors.User.WebAuthN.NoOrigins")
        return host


def code_purpose(user_id: str) -> str:
    return f"passkey-code:{user_id}"


def _authenticator(value: str | int) -> str:
    if isinstance(value, int) and 0 <= value < len(AUTHENTICATORS):
        return AUTHENTICATORS[value]
    if value in AUTHENTICATORS:
        return str(value)
    raise ValidationFailed(
        "invalid RegisterPasskeyRequest.Authenticator: value must be one of the defined enum values"
    )


class UserPasskeys(UserFactors):
    _webauthn: WebAuthnConfig
    _messages: MessageComposer

    # -- passkeys ----------------------------------------------------------------------------
    async def register_passkey(
        self, caller: Caller, request: RegisterPasskeyRequest
    ) -> RegisterPasskeyResponse:
        authenticator = _authenticator(request.authenticator)
        if request.code is None:
            user = await self._permitted(caller, request.user_id)
        else:  # the code is the proof: used up now, before any option is handed out
            user = await self._existing_user(request.user_id)
            await self._use_code(caller, user, request.code)
        token_id, options, updated = await self._begin(
            caller, user, PASSKEY, request.domain, authenticator, by_code=request.code is not None
        )
        return RegisterPasskeyResponse(
            details=details(updated),
            passkey_id=token_id,
            public_key_credential_creation_options=options,
        )

    async def verify_passkey_registration(
        self, caller: Caller, request: VerifyPasskeyRegistrationRequest
    ) -> DetailsResponse:
        return await self._finish(
            caller,
            request.user_id,
            PASSKEY,
            request.passkey_id,
            request.passkey_name,
            msgspec.json.encode(request.public_key_credential),
        )

    async def list_passkeys(
        self, caller: Caller, request: ListPasskeysRequest
    ) -> ListPasskeysResponse:
        user = await self._permitted(caller, request.user_id, "user.read")
        now_ms = self._clock.now_ms()
        found = [
            Passkey(id=t.id, state=_READY if t.ready else _NOT_READY, name=t.name)
            for t in rules.registered(user, PASSKEY)
            if t.ready or (t.challenge and t.expires_ms >= now_ms)
        ]
        return ListPasskeysResponse(
            details=ListDetails(
                total_result=str(len(found)),
                processed_sequence=str(user.sequence),
                timestamp=rfc3339_ms(now_ms),
            ),
            result=tuple(found),
        )

    async def remove_passkey(
        self, caller: Caller, request: RemovePasskeyRequest
    ) -> DetailsResponse:
        return await self._remove(caller, request.user_id, PASSKEY, request.passkey_id)

    async def create_passkey_registration_link(
        self, caller: Caller, request: CreatePasskeyRegistrationLinkRequest
    ) -> CreatePasskeyRegistrationLinkResponse:
        """A one-time code; returned (``returnCode``) or mailed with a link (``sendLink``)."""
        if request.send_link is not None and request.return_code is not None:
            raise ValidationFailed("invalid request: sendLink and returnCode are a oneof")
        user = await self._permitted(caller, request.user_id)
        code_id = self._ids.new_id()
        plain = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(REGISTRATION_CODE_LENGTH))
        digest = self._keyring.digest(code_purpose(user.id), plain)
        returned = request.return_code is not None
        jobs: list[DeliveryJob] = []
        if not returned:
            template = request.send_link.url_template if request.send_link else None
            if template:
                url_templates.validate(template, url_templates.PASSKEY_FIELDS)
            jobs.append(self._link_job(user, plain, code_id, template))

        def transition(current: User | None, now_ms: int) -> Change:
            return rules.add_registration_code(current, code_id, digest, now_ms, returned=returned)

        updated = await self._users.mutate(
            user.id, transition, creator_id=caller.user_id, jobs=jobs
        )
        code = PasskeyRegistrationCode(id=code_id, code=plain) if returned else None
        return CreatePasskeyRegistrationLinkResponse(details=details(updated), code=code)

    # -- U2F ---------------------------------------------------------------------------------
    async def register_u2f(
        self, caller: Caller, request: RegisterU2FRequest
    ) -> RegisterU2FResponse:
        user = await self._permitted(caller, request.user_id)
        token_id, options, updated = await self._begin(
            caller, user, U2F, request.domain, "", by_code=False
        )
        return RegisterU2FResponse(
            details=details(updated),
            u2f_id=token_id,
            public_key_credential_creation_options=options,
        )

    async def verify_u2f_registration(
        self, caller: Caller, request: VerifyU2FRegistrationRequest
    ) -> DetailsResponse:
        return await self._finish(
            caller,
            request.user_id,
            U2F,
            request.u2f_id,
            request.token_name,
            msgspec.json.encode(request.public_key_credential),
        )

    async def remove_u2f(self, caller: Caller, request: RemoveU2FRequest) -> DetailsResponse:
        return await self._remove(caller, request.user_id, U2F, request.u2f_id)

    # -- shared steps ------------------------------------------------------------------------
    async def _begin(
        self,
        caller: Caller,
        user: User,
        kind: str,
        domain: str | None,
        authenticator: str,
        *,
        by_code: bool,
    ) -> tuple[str, dict[str, object], User]:
        if user.human is None:
            raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
        rp_id = domain or self._webauthn.default_rp_id()
        ceremony.check_rp_id(rp_id, self._webauthn.origins)
        token_id = self._ids.new_id()
        challenge = ceremony.new_challenge()
        exclude = [t.credential_id for t in rules.registered(user, kind) if t.ready]
        options = ceremony.creation_options(
            kind=kind,
            rp_id=rp_id,
            rp_name=self._webauthn.rp_name,
            challenge=challenge,
            user_id=user.id,
            user_name=user.username,
            display_name=display_name(user),
            exclude=exclude,
            authenticator=authenticator,
        )
        attachment = ceremony.attachment_of(authenticator)

        def transition(current: User | None, now_ms: int) -> Change:
            return rules.begin_registration(
                current,
                token_id=token_id,
                kind=kind,
                rp_id=rp_id,
                challenge=challenge,
                attachment=attachment,
                by_code=by_code,
                now_ms=now_ms,
            )

        updated = await self._users.mutate(user.id, transition, creator_id=caller.user_id)
        return token_id, options, updated

    async def _finish(
        self,
        caller: Caller,
        user_id: str,
        kind: str,
        token_id: str,
        name: str,
        credential: bytes,
    ) -> DetailsResponse:
        """Verify against the pending registration; the verdict is stored either way.

        A registration begun with a code may be finished by whoever presented it; any other
        needs the user or ``user.write``, and a caller with neither learns nothing of the
        user's registrations (403, whatever their state).
        """
        user = await self._existing_user(user_id)
        permitted = caller.user_id == user.id or caller.has("user.write", user.org_id)
        try:
            pending = rules.pending_registration(user, kind, token_id, self._clock.now_ms())
        except ServiceError:
            if not permitted:
                raise permission_denied() from None
            raise
        if not (pending.by_code or permitted):
            raise permission_denied()
        result = ceremony.verify_registration(
            credential,
            kind=kind,
            challenge=pending.challenge,
            rp_id=pending.rp_id,
            origins=self._webauthn.origins,
        )

        def transition(current: User | None, now_ms: int) -> Change:
            live = rules.pending_registration(current, kind, token_id, now_ms)
            if live.challenge != pending.challenge:  # replaced meanwhile: verified for nothing
                raise FailedPrecondition("COMMAND-wa3Exp", "Errors.User.WebAuthN.ChallengeExpired")
            return rules.finish_registration(
                current, kind=kind, token_id=token_id, name=name, result=result, now_ms=now_ms
            )

        return await self._write(caller, user_id, transition)

    async def _remove(
        self, caller: Caller, user_id: str, kind: str, token_id: str
    ) -> DetailsResponse:
        await self._permitted(caller, user_id)

        def transition(current: User | None, now_ms: int) -> Change:
            return rules.remove_token(current, kind, token_id, now_ms)

        return await self._write(caller, user_id, transition)

    async def _use_code(self, caller: Caller, user: User, code: PasskeyRegistrationCode) -> None:
        purpose = code_purpose(user.id)

        def transition(current: User | None, now_ms: int) -> Change:
            return rules.use_registration_code(
                current,
                code.id,
                lambda stored: self._keyring.matches(purpose, code.code, stored),
                now_ms,
            )

        await self._users.mutate(user.id, transition, creator_id=caller.user_id)

    def _link_job(self, user: User, code: str, code_id: str, template: str | None) -> DeliveryJob:
        human = user.human
        if human is None:
            raise FailedPrecondition("COMMAND-h5u3s", "Errors.User.NotHuman")
        return self._messages.compose(
            user,
            channel="email",
            template="passkey_registration",
            recipient=human.email.address,
            code=code,
            url_template=template,
            sent_event="user.human.passwordless.initialization.code.sent",
            code_id=code_id,
        )
