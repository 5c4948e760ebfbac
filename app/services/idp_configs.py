"""Identity provider configuration: ZITADEL's admin (instance) and management (org) IdP RPCs.

``AdminIdpService`` serves ``zitadel.admin.v1.AdminService`` (``/admin/v1/idps/...``, the
instance's providers, ``iam.idp.read`` / ``iam.idp.write``); ``ManagementIdpService`` serves
``zitadel.management.v1.ManagementService`` (``/management/v1/idps/...``, the providers of
the organization the request names with ``x-zitadel-orgid`` or else the caller's own,
``org.idp.read`` / ``org.idp.write``; it also lists and reads the instance's, read-only).
The client secret is sealed under the master key as soon as it arrives and never returned.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from msgspec.structs import replace

from actors import idp_configs as rules
from actors import user_links as links_rules
from actors.errors import InvalidArgument, NotFound
from actors.idp_configs import IdpConfig, IdpFields, ProviderOptions
from actors.permissions import Caller
from actors.ports import Clock, IdSource
from actors.timefmt import rfc3339_ms
from actors.user_records import Change, User
from app.services import idp_config_wire as wire
from app.services.ports import UserMutations
from app.services.sealing import Keyring
from app.services.user_common import require

DEFAULT_LIMIT = 100

AddRequest = wire.AddGenericOIDCProviderRequest | wire.AddGenericOAuthProviderRequest
UpdateRequest = wire.UpdateGenericOIDCProviderRequest | wire.UpdateGenericOAuthProviderRequest


class IdpConfigStore(Protocol):
    async def get(self, idp_id: str) -> IdpConfig | None: ...

    async def add(self, config: IdpConfig, *, creator_id: str) -> IdpConfig: ...

    async def update(
        self,
        idp_id: str,
        change: Callable[[IdpConfig | None], IdpConfig],
        *,
        creator_id: str,
    ) -> IdpConfig: ...

    async def remove(self, config: IdpConfig, *, creator_id: str) -> int: ...

    async def search(self, org_id: str) -> list[IdpConfig]: ...


class LinkedUsers(UserMutations, Protocol):
    """The users linked to a provider's accounts (``storage.users``), for the cascade."""

    async def idp_link_owners(self, idp_id: str) -> set[str]: ...


class IdpConfigService:
    """The RPCs, for one kind of owner (``_org``: the instance, or the caller's org)."""

    #: The permission prefix: ``iam.idp`` (instance) or ``org.idp`` (an organization).
    scope = "iam.idp"

    def __init__(
        self,
        store: IdpConfigStore,
        keyring: Keyring,
        clock: Clock,
        ids: IdSource,
        linked: LinkedUsers,
        *,
        instance_id: str,
    ) -> None:
        self._store = store
        self._linked = linked
        self._keyring = keyring
        self._clock = clock
        self._ids = ids
        self._instance_id = instance_id

    # -- the owner of the request ------------------------------------------------------------
    def _org(self, caller: Caller) -> str:
        return ""

    def _owner(self, caller: Caller, action: str) -> str:
        org = self._org(caller)
        require(caller, f"{self.scope}.{action}", org or None)
        return org

    def _visible(self, config: IdpConfig | None, org: str, *, writing: bool) -> IdpConfig:
        if config is None or not (config.org_id == org or (not writing and not config.org_id)):
            raise rules.idp_not_found()
        return config

    # -- RPCs --------------------------------------------------------------------------------
    async def add_generic_oidc_provider(
        self, caller: Caller, request: wire.AddGenericOIDCProviderRequest
    ) -> wire.AddProviderResponse:
        return await self._add(caller, rules.OIDC, request)

    async def add_generic_oauth_provider(
        self, caller: Caller, request: wire.AddGenericOAuthProviderRequest
    ) -> wire.AddProviderResponse:
        return await self._add(caller, rules.OAUTH, request)

    async def update_generic_oidc_provider(
        self, caller: Caller, request: wire.UpdateGenericOIDCProviderRequest
    ) -> wire.DetailsOnlyResponse:
        return await self._update(caller, rules.OIDC, request)

    async def update_generic_oauth_provider(
        self, caller: Caller, request: wire.UpdateGenericOAuthProviderRequest
    ) -> wire.DetailsOnlyResponse:
        return await self._update(caller, rules.OAUTH, request)

    async def get_provider_by_id(
        self, caller: Caller, request: wire.GetProviderByIDRequest
    ) -> wire.GetProviderByIDResponse:
        org = self._owner(caller, "read")
        config = self._visible(await self._store.get(request.id), org, writing=False)
        return wire.GetProviderByIDResponse(idp=self._out(config))

    async def list_providers(
        self, caller: Caller, request: wire.ListProvidersRequest
    ) -> wire.ListProvidersResponse:
        org = self._owner(caller, "read")
        found = await self._store.search(org)
        if org:
            found = await self._store.search("") + found
        found = [c for c in found if all(_matches(c, q) for q in request.queries)]
        query = request.query or wire.ListQuery()
        ordered = found if query.asc else list(reversed(found))
        shown = ordered[query.offset : query.offset + (query.limit or DEFAULT_LIMIT)]
        return wire.ListProvidersResponse(
            details=wire.ListDetailsOut(
                total_result=str(len(found)),
                processed_sequence=str(max((c.sequence for c in found), default=0)),
                view_timestamp=rfc3339_ms(self._clock.now_ms()),
            ),
            result=tuple(self._out(c) for c in shown),
        )

    async def delete_provider(
        self, caller: Caller, request: wire.DeleteProviderRequest
    ) -> wire.DetailsOnlyResponse:
        org = self._owner(caller, "write")
        config = self._visible(await self._store.get(request.id), org, writing=True)
        sequence = await self._store.remove(config, creator_id=caller.user_id)
        await self._drop_links(config.id, caller)
        return wire.DetailsOnlyResponse(
            details=wire.ObjectDetails(
                sequence=str(sequence),
                change_date=rfc3339_ms(self._clock.now_ms()),
                resource_owner=org or self._instance_id,
            )
        )

    # -- steps -------------------------------------------------------------------------------
    async def _drop_links(self, idp_id: str, caller: Caller) -> None:
        """ZITADEL's cascade: the users' links to a deleted provider go with it.

        After the removal, so no new link to it can be added meanwhile (AddIDPLink checks
        the provider exists); each user's write is its own, one at a time.
        """

        def transition(user: User | None, now_ms: int) -> Change:
            return links_rules.remove_provider_links(user, idp_id, now_ms)

        for user_id in sorted(await self._linked.idp_link_owners(idp_id)):
            with suppress(NotFound):  # unlinked or deleted meanwhile: nothing left to drop
                await self._linked.mutate(user_id, transition, creator_id=caller.user_id)

    async def _add(
        self, caller: Caller, kind: str, request: AddRequest
    ) -> wire.AddProviderResponse:
        org = self._owner(caller, "write")
        idp_id = self._ids.new_id()
        fields = self._fields(idp_id, request)
        config = rules.new_config(idp_id, kind, org, fields, self._clock.now_ms())
        stored = await self._store.add(config, creator_id=caller.user_id)
        return wire.AddProviderResponse(details=self._details(stored), id=stored.id)

    async def _update(
        self, caller: Caller, kind: str, request: UpdateRequest
    ) -> wire.DetailsOnlyResponse:
        org = self._owner(caller, "write")
        fields = self._fields(request.id, request)
        rules.validate(kind, fields, adding=False)  # bad input: 400 before any read

        def change(current: IdpConfig | None) -> IdpConfig:
            visible = self._visible(current, org, writing=True)
            return rules.updated(visible, kind, fields, self._clock.now_ms())

        stored = await self._store.update(request.id, change, creator_id=caller.user_id)
        return wire.DetailsOnlyResponse(details=self._details(stored))

    def _fields(self, idp_id: str, request: AddRequest | UpdateRequest) -> IdpFields:
        """The request as the rules take it; the secret is sealed here, bound to the id."""
        secret = request.client_secret
        sealed = (
            self._keyring.seal(rules.secret_purpose(idp_id), secret.encode()) if secret else None
        )
        options = request.provider_options or wire.ProviderOptionsWire()
        base = IdpFields(
            name=request.name,
            client_id=request.client_id,
            sealed_secret=sealed,
            scopes=tuple(request.scopes),
            use_pkce=request.use_pkce,
            options=ProviderOptions(
                is_linking_allowed=options.is_linking_allowed,
                is_creation_allowed=options.is_creation_allowed,
                is_auto_creation=options.is_auto_creation,
                is_auto_update=options.is_auto_update,
            ),
        )
        if isinstance(request, wire.OIDCProviderSettings):
            return replace(
                base, issuer=request.issuer, is_id_token_mapping=request.is_id_token_mapping
            )
        return replace(
            base,
            authorization_endpoint=request.authorization_endpoint,
            token_endpoint=request.token_endpoint,
            user_endpoint=request.user_endpoint,
            id_attribute=request.id_attribute,
        )

    def _details(self, config: IdpConfig) -> wire.ObjectDetails:
        return wire.ObjectDetails(
            sequence=str(config.sequence),
            creation_date=rfc3339_ms(config.creation_ms),
            change_date=rfc3339_ms(config.change_ms),
            resource_owner=config.org_id or self._instance_id,
        )

    def _out(self, config: IdpConfig) -> wire.ProviderOut:
        options = config.options
        oidc = oauth = None
        if config.kind == rules.OIDC:
            oidc = wire.OIDCConfigOut(
                issuer=config.issuer,
                client_id=config.client_id,
                scopes=config.scopes,
                is_id_token_mapping=config.is_id_token_mapping,
                use_pkce=config.use_pkce,
            )
        else:
            oauth = wire.OAuthConfigOut(
                client_id=config.client_id,
                authorization_endpoint=config.authorization_endpoint,
                token_endpoint=config.token_endpoint,
                user_endpoint=config.user_endpoint,
                scopes=config.scopes,
                id_attribute=config.id_attribute,
                use_pkce=config.use_pkce,
            )
        return wire.ProviderOut(
            id=config.id,
            details=self._details(config),
            state="IDP_STATE_ACTIVE",
            name=config.name,
            owner="IDP_OWNER_TYPE_ORG" if config.org_id else "IDP_OWNER_TYPE_SYSTEM",
            type="IDP_TYPE_OIDC" if config.kind == rules.OIDC else "IDP_TYPE_OAUTH",
            config=wire.ProviderConfigOut(
                options=wire.ProviderOptionsOut(
                    is_linking_allowed=options.is_linking_allowed,
                    is_creation_allowed=options.is_creation_allowed,
                    is_auto_creation=options.is_auto_creation,
                    is_auto_update=options.is_auto_update,
                ),
                oidc=oidc,
                oauth=oauth,
            ),
        )


class AdminIdpService(IdpConfigService):
    """The instance's providers (``/admin/v1/idps``)."""


class ManagementIdpService(IdpConfigService):
    """An organization's providers (``/management/v1/idps``)."""

    scope = "org.idp"

    def _org(self, caller: Caller) -> str:
        org = caller.context_org_id or caller.org_id
        if not org:
            raise InvalidArgument("IDP-noOrg", "Errors.Org.NotFound")
        return org


def _matches(config: IdpConfig, query: wire.ProviderQuery) -> bool:
    name_query = query.idp_name_query
    if name_query is None:
        return True
    name, wanted = config.name, name_query.name
    method = name_query.method.removeprefix("TEXT_QUERY_METHOD_")
    if method.endswith("IGNORE_CASE"):
        name, wanted = name.lower(), wanted.lower()
    if method.startswith("CONTAINS"):
        return wanted in name
    if method.startswith("STARTS_WITH"):
        return name.startswith(wanted)
    return name == wanted
