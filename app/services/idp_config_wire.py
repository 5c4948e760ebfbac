"""The wire types of ZITADEL's admin / management API for identity providers (v1 messages).

camelCase msgspec Structs as the other wire modules; ``id`` comes from the REST path. The
client secret is write-only: it is in the add and update requests and in no response. Pure.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from app.services.session_wire import HttpUrl, Str200, Wire

Url = HttpUrl
Scopes = Annotated[tuple[Str200, ...], msgspec.Meta(max_length=20)]


class ProviderOptionsWire(Wire):
    is_linking_allowed: bool = False
    is_creation_allowed: bool = False
    is_auto_creation: bool = False
    is_auto_update: bool = False


class ProviderOptionsOut(Wire):
    """The same four flags in responses (a separate type so the OpenAPI schemas stay one-way)."""

    is_linking_allowed: bool = False
    is_creation_allowed: bool = False
    is_auto_creation: bool = False
    is_auto_update: bool = False


#: absent or empty on an update: the stored secret stays
OptionalSecret = Annotated[str, msgspec.Meta(max_length=200)]


class OIDCProviderSettings(Wire, kw_only=True):
    """A generic OIDC provider as the add and update requests both describe it."""

    name: Str200
    issuer: Url
    client_id: Str200
    scopes: Scopes = ()
    provider_options: ProviderOptionsWire | None = None
    is_id_token_mapping: bool = False
    use_pkce: bool = False


class AddGenericOIDCProviderRequest(OIDCProviderSettings, kw_only=True):
    client_secret: Str200


class UpdateGenericOIDCProviderRequest(OIDCProviderSettings, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("id",)
    id: Str200 = ""
    client_secret: OptionalSecret = ""


class OAuthProviderSettings(Wire, kw_only=True):
    """A generic OAuth 2 provider as the add and update requests both describe it."""

    name: Str200
    client_id: Str200
    authorization_endpoint: Url
    token_endpoint: Url
    user_endpoint: Url
    id_attribute: Str200
    scopes: Scopes = ()
    provider_options: ProviderOptionsWire | None = None
    use_pkce: bool = False


class AddGenericOAuthProviderRequest(OAuthProviderSettings, kw_only=True):
    client_secret: Str200


class UpdateGenericOAuthProviderRequest(OAuthProviderSettings, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("id",)
    id: Str200 = ""
    client_secret: OptionalSecret = ""


class ProviderIdRequest(Wire):
    required: ClassVar[tuple[str, ...]] = ("id",)
    id: Str200 = ""


class GetProviderByIDRequest(ProviderIdRequest, kw_only=True):
    pass


class DeleteProviderRequest(ProviderIdRequest, kw_only=True):
    pass


class ListQuery(Wire):
    offset: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    limit: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    asc: bool = False


class IdpNameQuery(Wire):
    name: Str200
    #: TEXT_QUERY_METHOD_EQUALS (default), ..._EQUALS_IGNORE_CASE, ..._CONTAINS,
    #: ..._CONTAINS_IGNORE_CASE, ..._STARTS_WITH, ..._STARTS_WITH_IGNORE_CASE
    method: str = "TEXT_QUERY_METHOD_EQUALS"


class ProviderQuery(Wire):
    idp_name_query: IdpNameQuery | None = None


class ListProvidersRequest(Wire):
    query: ListQuery | None = None
    queries: tuple[ProviderQuery, ...] = ()


class ObjectDetails(Wire):
    sequence: str = "0"
    creation_date: str | None = None
    change_date: str | None = None
    resource_owner: str = ""


class AddProviderResponse(Wire):
    details: ObjectDetails
    id: str


class DetailsOnlyResponse(Wire):
    details: ObjectDetails


class OIDCConfigOut(Wire):
    issuer: str
    client_id: str
    scopes: tuple[str, ...] = ()
    is_id_token_mapping: bool = False
    use_pkce: bool = False


class OAuthConfigOut(Wire):
    client_id: str
    authorization_endpoint: str
    token_endpoint: str
    user_endpoint: str
    scopes: tuple[str, ...] = ()
    id_attribute: str = ""
    use_pkce: bool = False


class ProviderConfigOut(Wire):
    options: ProviderOptionsOut
    oidc: OIDCConfigOut | None = None
    oauth: OAuthConfigOut | None = None


class ProviderOut(Wire, kw_only=True):
    id: str
    details: ObjectDetails
    #: a non-zero enum, so always emitted (ZITADEL omits only zero values)
    state: str
    name: str
    owner: str
    type: str
    config: ProviderConfigOut


class GetProviderByIDResponse(Wire):
    idp: ProviderOut


class ListDetailsOut(Wire):
    total_result: str = "0"
    processed_sequence: str = "0"
    view_timestamp: str | None = None


class ListProvidersResponse(Wire):
    details: ListDetailsOut
    result: tuple[ProviderOut, ...] = ()
