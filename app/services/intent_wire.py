"""The wire types of IdP sign-in: intents (start, retrieve) and a user's IdP links.

ZITADEL's ``zitadel.user.v2`` messages: camelCase msgspec Structs; ``idpIntentId`` and
``userId`` come from the REST path. ``rawInformation`` is the provider's user JSON as it
sent it (a ``google.protobuf.Struct``). Pure.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from app.services.session_wire import Details, HttpUrl, ListDetails, Str200, Wire, exactly_one
from app.services.user_wire import IDPLink, UserIdRequest


class RedirectURLs(Wire):
    #: ``actors.idp_intents.validate_redirect_url``: absolute http(s), at most 2048 characters
    success_url: HttpUrl
    failure_url: HttpUrl


class StartIdentityProviderIntentRequest(Wire):
    schema_rules: ClassVar[dict[str, Any]] = exactly_one("urls", "ldap")
    idp_id: Str200
    urls: RedirectURLs | None = None
    #: LDAP providers are not supported: a request with ``ldap`` is answered 501
    ldap: dict[str, Any] | None = None


class IdPIntent(Wire):
    idp_intent_id: str
    idp_intent_token: str
    user_id: str | None = None


class StartIdentityProviderIntentResponse(Wire):
    details: Details
    auth_url: str | None = None
    idp_intent: IdPIntent | None = None


class RetrieveIdentityProviderIntentRequest(Wire, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("idp_intent_id",)
    idp_intent_id: Str200 = ""
    idp_intent_token: Str200


class IDPOAuthAccessInformation(Wire):
    access_token: str
    id_token: str | None = None


class IDPInformation(Wire):
    oauth: IDPOAuthAccessInformation
    idp_id: str
    user_id: str
    user_name: str = ""
    raw_information: dict[str, Any] = msgspec.field(default_factory=dict)


class RetrieveIdentityProviderIntentResponse(Wire):
    details: Details
    idp_information: IDPInformation
    #: the user linked to the provider's account, if any
    user_id: str | None = None


class AddIDPLinkRequest(UserIdRequest, kw_only=True):
    idp_link: IDPLink


class ListQueryIn(Wire):
    offset: int = 0
    limit: int = 0
    asc: bool = False


class ListIDPLinksRequest(UserIdRequest, kw_only=True):
    query: ListQueryIn | None = None


class ListIDPLinksResponse(Wire):
    details: ListDetails
    result: tuple[IDPLink, ...] = ()


class RemoveIDPLinkRequest(UserIdRequest, kw_only=True):
    required: ClassVar[tuple[str, ...]] = ("user_id", "idp_id", "linked_user_id")
    idp_id: Str200 = ""
    linked_user_id: Str200 = ""
