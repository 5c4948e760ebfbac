"""IdP sign-in driven by the official ZITADEL Python SDK (``zitadel-client``).

The provider is the suite's real oidc-provider-mock; the provider itself is configured over
``/admin/v1/idps`` (the SDK has no admin v1 surface), everything else goes through the SDK's
public API on the Connect paths: StartIdentityProviderIntent, RetrieveIdentityProviderIntent,
AddIDPLink, ListIDPLinks and a CreateSession with an ``idpIntent`` check.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from tests.oidc_provider import OidcProvider, sign_in
from tests.processes import free_port, server
from tests.support import ADMIN_TOKEN
from tests.test_sdk import add_org_and_human, get_session

# tests.test_sdk imported the SDK first, with its import-time warnings handled
from zitadel_client.models.session_service_check_idp_intent import (  # isort: skip
    SessionServiceCheckIDPIntent,
)
from zitadel_client.models.session_service_check_user import (  # isort: skip
    SessionServiceCheckUser,
)
from zitadel_client.models.session_service_checks import SessionServiceChecks  # isort: skip
from zitadel_client.models.session_service_create_session_request import (  # isort: skip
    SessionServiceCreateSessionRequest,
)
from zitadel_client.models.user_service_add_idp_link_request import (  # isort: skip
    UserServiceAddIDPLinkRequest,
)
from zitadel_client.models.user_service_idp_link import UserServiceIDPLink  # isort: skip
from zitadel_client.models.user_service_list_idp_links_request import (  # isort: skip
    UserServiceListIDPLinksRequest,
)
from zitadel_client.models.user_service_redirect_urls import (  # isort: skip
    UserServiceRedirectURLs,
)
from zitadel_client.models.user_service_retrieve_identity_provider_intent_request import (  # isort: skip
    UserServiceRetrieveIdentityProviderIntentRequest,
)
from zitadel_client.models.user_service_start_identity_provider_intent_request import (  # isort: skip
    UserServiceStartIdentityProviderIntentRequest,
)
from zitadel_client.zitadel import Zitadel  # isort: skip

SUCCESS = "https://login.example.com/idp/success"
FAILURE = "https://login.example.com/idp/failure"


@pytest.fixture(name="base_url")
def _base_url(redis: object, redis_url: str) -> Iterator[str]:
    """``python -m app`` whose public URL is its own address (the providers' redirect URI)."""
    port = free_port()
    with server(redis_url, http_port=port, public_url=f"http://127.0.0.1:{port}") as running:
        yield running.url


def _add_provider(base_url: str, issuer: str) -> str:
    body = {
        "name": "sdk-mock",
        "issuer": issuer,
        "clientId": "sessiond-sdk",
        "clientSecret": "sdk-client-secret",
        "scopes": ["openid", "profile", "email"],
    }
    request = urllib.request.Request(  # noqa: S310 - our own loopback URL
        f"{base_url}/admin/v1/idps/generic_oidc",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - as above
        return str(json.loads(answer.read())["id"])


async def _browser(auth_url: str, sub: str) -> dict[str, str]:
    """The browser's part: sign in at the provider, come back through our callback."""
    async with aiohttp.ClientSession() as http:
        location = await sign_in(http, auth_url, sub)
        async with http.get(location, allow_redirects=False) as answer:
            assert answer.status == 302, await answer.text()
            target = answer.headers["Location"]
    assert target.startswith(SUCCESS + "?"), target
    return {k: v[0] for k, v in parse_qs(urlsplit(target).query).items()}


def test_an_idp_sign_in_through_the_sdk(base_url: str, oidc_provider: OidcProvider):
    client = Zitadel.with_access_token(base_url, ADMIN_TOKEN)
    human = add_org_and_human(client)
    idp_id = _add_provider(base_url, oidc_provider.issuer)
    oidc_provider.set_user("sdk-sub", {"email": "sdk@idp.example", "preferred_username": "sdk"})

    started = client.users.start_identity_provider_intent(
        UserServiceStartIdentityProviderIntentRequest(
            idpId=idp_id, urls=UserServiceRedirectURLs(successUrl=SUCCESS, failureUrl=FAILURE)
        )
    )
    assert started is not None
    assert started.auth_url is not None
    assert started.auth_url.startswith(oidc_provider.issuer)
    found = asyncio.run(_browser(started.auth_url, "sdk-sub"))

    retrieved = client.users.retrieve_identity_provider_intent(
        UserServiceRetrieveIdentityProviderIntentRequest(
            idpIntentId=found["id"], idpIntentToken=found["token"]
        )
    )
    assert retrieved is not None
    assert retrieved.idp_information is not None
    assert retrieved.idp_information.user_id == "sdk-sub"
    assert retrieved.idp_information.idp_id == idp_id
    assert retrieved.user_id is None  # nobody linked yet

    client.users.add_idp_link(
        UserServiceAddIDPLinkRequest(
            userId=human.user_id,
            idpLink=UserServiceIDPLink(idpId=idp_id, userId="sdk-sub", userName="sdk"),
        )
    )
    links = client.users.list_idp_links(UserServiceListIDPLinksRequest(userId=human.user_id))
    assert links is not None
    assert [link.user_id for link in links.result or []] == ["sdk-sub"]

    intent = SessionServiceCheckIDPIntent(idpIntentId=found["id"], idpIntentToken=found["token"])
    created = client.sessions.create_session(
        SessionServiceCreateSessionRequest(
            checks=SessionServiceChecks(
                user=SessionServiceCheckUser(userId=human.user_id), idpIntent=intent
            )
        )
    )
    assert created is not None
    session = get_session(client, created.session_id)
    assert session.factors is not None
    assert session.factors.intent is not None
    assert session.factors.intent.verified_at is not None
