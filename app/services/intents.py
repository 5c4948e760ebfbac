"""IdP intents: StartIdentityProviderIntent, the provider's callback, Retrieve, the session check.

The flow (spec §15): a login UI starts an intent and sends the person to ``authUrl``; the
provider sends them back to ``/idps/callback`` with ``state`` (the intent id) and a code,
which is exchanged and validated here (``app.idp.client``); the person lands on the login
UI's ``successUrl`` with the intent id and token, and the UI checks the intent on a session
(``idpIntent``), which uses it up. Every state change is a compare-and-set on the intent, so
one callback finishes it and one session consumes it, whatever races.

The intent token is the intent id sealed under the master key (AES-GCM, as ZITADEL encrypts
it): it is never stored, and only its holder can use or read the intent. The PKCE verifier
and the provider's tokens are stored sealed too.
"""

from __future__ import annotations

import hmac
import secrets
from contextlib import suppress

import msgspec

from actors import idp_intents as rules
from actors.errors import (
    InvalidArgument,
    ServiceError,
    Unavailable,
    Unimplemented,
    ValidationFailed,
    permission_denied,
)
from actors.idp_configs import IdpConfig, ProviderEndpoints, idp_not_found, secret_purpose
from actors.idp_intents import Intent
from actors.permissions import Caller
from actors.ports import Clock, VerifiedFactor
from actors.timefmt import rfc3339_ms
from app.idp.client import Identity, IdpError, ProviderSettings, new_pkce, with_query
from app.services import intent_wire as wire
from app.services.idp_configs import IdpConfigStore
from app.services.intent_ports import (
    IdentityProviderClient,
    IdpLinkOwners,
    IntentStore,
)
from app.services.sealing import Keyring, SealError
from app.services.session_wire import Details

#: Sealing purposes (AES-GCM associated data), not secrets.
TOKEN_PURPOSE = "idp-intent-token"  # noqa: S105
_VERIFIER_PURPOSE = "idp-intent-pkce"
_ACCESS_TOKEN_PURPOSE = "idp-intent-access-token"  # noqa: S105
_ID_TOKEN_PURPOSE = "idp-intent-id-token"  # noqa: S105
#: The callback path the providers are configured with: ``<public URL>/idps/callback``.
CALLBACK_PATH = "/idps/callback"


def unknown_state() -> InvalidArgument:
    return InvalidArgument("IDP-unknownState", "Errors.Intent.NotStarted")


class IntentService:
    def __init__(
        self,
        intents: IntentStore,
        idps: IdpConfigStore,
        links: IdpLinkOwners,
        client: IdentityProviderClient,
        keyring: Keyring,
        clock: Clock,
        *,
        instance_id: str,
        public_url: str,
        lifetime_ms: int,
    ) -> None:
        self._intents = intents
        self._idps = idps
        self._links = links
        self._client = client
        self._keyring = keyring
        self._clock = clock
        self._instance_id = instance_id
        self._redirect_uri = public_url.rstrip("/") + CALLBACK_PATH
        self._lifetime_ms = lifetime_ms

    # -- the RPCs ----------------------------------------------------------------------------
    async def start_intent(
        self, caller: Caller, request: wire.StartIdentityProviderIntentRequest
    ) -> wire.StartIdentityProviderIntentResponse:
        """A started intent and the provider's authorization URL (state = the intent id)."""
        if not caller.has("session.write"):
            raise permission_denied()
        if request.ldap is not None:
            raise Unimplemented(
                "IDP-notYet", "Errors.IDP.NotSupported", extra={"unsupported": ["ldap"]}
            )
        urls = request.urls
        if urls is None:
            raise ValidationFailed("invalid StartIdentityProviderIntentRequest.Content: required")
        rules.validate_redirect_url("SuccessUrl", urls.success_url)
        rules.validate_redirect_url("FailureUrl", urls.failure_url)
        config = await self._idps.get(request.idp_id)
        if config is None:
            raise idp_not_found()
        intent_id = secrets.token_urlsafe(18)
        nonce = secrets.token_urlsafe(24)
        verifier, challenge = new_pkce()
        try:
            auth_url = await self._client.authorization_url(
                _provider(config, ""),
                redirect_uri=self._redirect_uri,
                state=intent_id,
                nonce=nonce,
                code_challenge=challenge,
            )
        except IdpError as failure:
            raise _unreachable(failure) from None
        now = self._clock.now_ms()
        intent = Intent(
            id=intent_id,
            idp_id=config.id,
            success_url=urls.success_url,
            failure_url=urls.failure_url,
            redirect_uri=self._redirect_uri,
            nonce=nonce,
            sealed_verifier=self._keyring.seal(_VERIFIER_PURPOSE + intent_id, verifier.encode()),
            creation_ms=now,
        )
        payload: dict[str, object] = {
            "idpId": config.id,
            "successURL": urls.success_url,
            "failureURL": urls.failure_url,
        }
        await self._save("", intent, rules.START_TTL_MS, "idpintent.started", payload, caller)
        return wire.StartIdentityProviderIntentResponse(
            details=self._details(now), auth_url=auth_url
        )

    async def retrieve_intent(
        self, caller: Caller, request: wire.RetrieveIdentityProviderIntentRequest
    ) -> wire.RetrieveIdentityProviderIntentResponse:
        """What the provider said about the person, for the holder of the intent's token."""
        if not caller.has("session.write"):
            raise permission_denied()
        self._check_token(request.idp_intent_id, request.idp_intent_token)
        intent = await self._intents.get_intent(request.idp_intent_id)
        error = rules.check_retrievable(intent, self._clock.now_ms())
        if error is not None:
            raise error
        assert intent is not None  # noqa: S101 - check_retrievable refuses None
        user_id = intent.user_id or await self._links.idp_link_owner(
            intent.idp_id, intent.idp_user_id
        )
        return wire.RetrieveIdentityProviderIntentResponse(
            details=self._details(intent.succeeded_ms),
            idp_information=wire.IDPInformation(
                oauth=wire.IDPOAuthAccessInformation(
                    access_token=self._open(
                        _ACCESS_TOKEN_PURPOSE, intent, intent.sealed_access_token
                    )
                    or "",
                    id_token=self._open(_ID_TOKEN_PURPOSE, intent, intent.sealed_id_token),
                ),
                idp_id=intent.idp_id,
                user_id=intent.idp_user_id,
                user_name=intent.idp_user_name,
                raw_information=intent.raw_information,
            ),
            user_id=user_id or None,
        )

    # -- the provider's callback -------------------------------------------------------------
    async def finish(self, state: str, code: str, error: str, error_description: str) -> str:
        """The provider sent the person back: the URL to redirect them to.

        A ``state`` that names no started intent (unknown, tampered, or already finished:
        a replayed callback) is refused with 400 and no redirect, and changes nothing.
        """
        if not state:
            raise ValidationFailed("invalid callback: state is required")
        intent = await self._intents.get_intent(state)
        if intent is None or intent.state != rules.STARTED:
            raise unknown_state()
        if not code and not error:  # a broken provider, or a hand-made URL: the intent waits
            raise ValidationFailed("invalid callback: code (or error) is required")
        if error:
            return await self._fail(intent, error, error_description)
        config = await self._idps.get(intent.idp_id)
        if config is None:
            return await self._fail(intent, "idp_removed", "the identity provider was removed")
        secret = await self._client_secret(config)
        if secret is None:
            return await self._fail(
                intent, "server_error", "the client secret cannot be opened with the master key"
            )
        try:
            identity = await self._client.complete(
                _provider(config, secret),
                code=code,
                redirect_uri=intent.redirect_uri,
                code_verifier=self._open(_VERIFIER_PURPOSE, intent, intent.sealed_verifier),
                nonce=intent.nonce,
            )
        except IdpError as failure:
            return await self._fail(intent, failure.error, failure.description)
        return await self._succeed(intent, identity)

    async def _succeed(self, intent: Intent, identity: Identity) -> str:
        now = self._clock.now_ms()
        linked = await self._links.idp_link_owner(intent.idp_id, identity.user_id) or ""
        done = msgspec.structs.replace(
            intent,
            state=rules.SUCCEEDED,
            idp_user_id=identity.user_id,
            idp_user_name=identity.user_name,
            raw_information=identity.raw_information,
            sealed_access_token=self._seal(_ACCESS_TOKEN_PURPOSE, intent, identity.access_token),
            sealed_id_token=self._seal(_ID_TOKEN_PURPOSE, intent, identity.id_token),
            sealed_verifier="",
            user_id=linked,
            succeeded_ms=now,
            expires_ms=rules.expiry_ms(now, self._lifetime_ms, identity.expires_at_ms),
        )
        payload: dict[str, object] = {
            "idpUser": identity.user_id,
            "idpUserName": identity.user_name,
            "userId": linked,
            "expiresAt": rfc3339_ms(done.expires_ms),
        }
        ttl = max(done.expires_ms - now, 0) + rules.AFTER_USE_TTL_MS
        await self._save(rules.STARTED, done, ttl, "idpintent.succeeded", payload)
        query = {"id": intent.id, "token": self._token(intent.id)}
        if linked:
            query["user"] = linked
        return with_query(intent.success_url, query)

    async def _fail(self, intent: Intent, error: str, description: str) -> str:
        error = error[:200]
        description = description[:500]
        failed = msgspec.structs.replace(
            intent,
            state=rules.FAILED,
            error=error,
            error_description=description,
            sealed_verifier="",
        )
        payload: dict[str, object] = {"reason": error}
        await self._save(rules.STARTED, failed, rules.AFTER_USE_TTL_MS, "idpintent.failed", payload)
        query = {"id": intent.id, "error": error, "error_description": description}
        return with_query(intent.failure_url, query)

    # -- the session check (``actors.ports.IntentVerifier``) ---------------------------------
    async def verify_intent(self, user_id: str, intent_id: str, token: str) -> VerifiedFactor:
        """Spec §4.4 steps 2-5 for the session's user; ``consume`` uses the intent up."""
        self._check_token(intent_id, token)
        intent = await self._intents.get_intent(intent_id)
        owner = None
        if intent is not None and intent.state == rules.SUCCEEDED and not intent.user_id:
            owner = await self._links.idp_link_owner(intent.idp_id, intent.idp_user_id)
        error = rules.check_for_session(intent, user_id, owner, self._clock.now_ms())
        if error is not None:
            raise error
        assert intent is not None  # noqa: S101 - check_for_session refuses None
        if await self._idps.get(intent.idp_id) is None:  # deleted since: it signs nobody in
            raise rules.provider_removed()
        return VerifiedFactor(kind="idp_intent", user_id=user_id, attempt_id="", token_id=intent_id)

    async def consume(self, factor: VerifiedFactor, session_id: str) -> None:
        """Succeeded → consumed, once: of two sessions racing for one intent, one wins."""
        intent = await self._intents.get_intent(factor.token_id)
        if intent is None or intent.state != rules.SUCCEEDED:
            raise rules.not_succeeded()
        now = self._clock.now_ms()
        used = msgspec.structs.replace(
            intent, state=rules.CONSUMED, consumed_ms=now, session_id=session_id
        )
        payload: dict[str, object] = {"sessionId": session_id}
        won = await self._intents.save_intent(
            rules.SUCCEEDED,
            used,
            ttl_ms=rules.AFTER_USE_TTL_MS,
            event_type="idpintent.consumed",
            payload=payload,
        )
        if not won:
            raise rules.not_succeeded()

    # -- helpers -----------------------------------------------------------------------------
    def _token(self, intent_id: str) -> str:
        return self._keyring.seal(TOKEN_PURPOSE, intent_id.encode())

    def _check_token(self, intent_id: str, token: str) -> None:
        """Spec §4.4 step 2: the token must open to this intent's id."""
        if not token:
            raise rules.invalid_token("CRYPTO-Sfefs")
        try:
            opened = self._keyring.open(TOKEN_PURPOSE, token)
        except (SealError, ValueError):
            raise rules.invalid_token("CRYPTO-Sf4gt") from None
        if not hmac.compare_digest(opened, intent_id.encode()):
            raise rules.invalid_token()

    def _seal(self, purpose: str, intent: Intent, value: str | None) -> str:
        return self._keyring.seal(purpose + intent.id, value.encode()) if value else ""

    def _open(self, purpose: str, intent: Intent, sealed: str) -> str | None:
        return self._keyring.open(purpose + intent.id, sealed).decode() if sealed else None

    async def _client_secret(self, config: IdpConfig) -> str | None:
        """The provider's client secret (None: no key opens it); re-sealed after a rotation."""
        purpose = secret_purpose(config.id)
        try:
            secret = self._keyring.open(purpose, config.sealed_secret)
        except SealError:
            return None
        if self._keyring.needs_reseal(config.sealed_secret):
            resealed = self._keyring.seal(purpose, secret)

            def change(current: IdpConfig | None) -> IdpConfig:
                if current is None:
                    raise idp_not_found()
                if current.sealed_secret != config.sealed_secret:
                    return current  # changed meanwhile: that writer sealed it under the new key
                return msgspec.structs.replace(
                    current, sealed_secret=resealed, change_ms=self._clock.now_ms()
                )

            # best effort: the sign-in goes on, and the next one tries again
            with suppress(ServiceError):
                await self._idps.update(config.id, change, creator_id="")
        return secret.decode()

    async def _save(
        self,
        expected: str,
        intent: Intent,
        ttl_ms: int,
        event_type: str,
        payload: dict[str, object],
        caller: Caller | None = None,
    ) -> None:
        won = await self._intents.save_intent(
            expected,
            intent,
            ttl_ms=ttl_ms,
            event_type=event_type,
            payload=payload,
            creator_id=caller.user_id if caller is not None else "",
        )
        if not won:  # a second callback for the same intent finished it meanwhile
            raise unknown_state()

    def _details(self, at_ms: int) -> Details:
        return Details(change_date=rfc3339_ms(at_ms), resource_owner=self._instance_id)


def _provider(config: IdpConfig, client_secret: str) -> ProviderSettings:
    shared = msgspec.structs.fields(ProviderEndpoints)
    endpoints = {field.name: getattr(config, field.name) for field in shared}
    return ProviderSettings(kind=config.kind, client_secret=client_secret, **endpoints)


def _unreachable(failure: IdpError) -> Unavailable:
    return Unavailable("IDP-unreachable", "Errors.IDP.Unreachable", extra={"reason": failure.error})
