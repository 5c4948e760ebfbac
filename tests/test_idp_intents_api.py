"""IdP sign-in end to end: a real OIDC provider on loopback, the real service, real HTTP.

The provider is oidc-provider-mock (``tests.oidc_provider``); the flow is the browser's, driven
without a browser: start an intent, follow ``authUrl`` to the provider, sign in there, follow
its redirect to our ``/idps/callback``, land on the login UI's success URL with the intent's
id and token, then check the intent on a session. Checklist items 11-16 of the spec, the
provider's failures, hostile callbacks and the one-use race.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import aiohttp
import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from actors.idp_configs import IdpConfig, secret_purpose
from app.process.settings import Settings
from app.services.intents import TOKEN_PURPOSE
from app.services.sealing import Keyring, new_master_key
from storage import keys
from tests.apifixtures import make_settings
from tests.oidc_provider import OidcProvider, sign_in
from tests.processes import logged_server
from tests.support import ADMIN_TOKEN, MASTER_KEY, Api

SUCCESS = "https://login.example.com/idp/success"
FAILURE = "https://login.example.com/idp/failure"
Client = TestClient[web.Request, web.Application]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(name="idp_client")
async def _idp_client(
    request: pytest.FixtureRequest, redis: aioredis.Redis, redis_url: str
) -> AsyncIterator[Client]:
    """The service on a known port, so the providers' redirect URI points back at it."""
    from app.application import create_app
    from app.process.bootstrap import bootstrap

    port = _free_port()
    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = {"public_url": f"http://127.0.0.1:{port}", "idp_timeout_s": 3.0}
    overrides.update(marker.kwargs if marker else {})
    settings: Settings = make_settings(redis_url, **overrides)
    await bootstrap(settings, dev_mode=False)
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    async with TestClient(server) as client:
        yield client


@pytest.fixture(name="iapi")
def _iapi(idp_client: Client) -> Api:
    return Api(idp_client)


@pytest.fixture(name="http")
async def _http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def add_oidc_idp(api: Api, issuer: str, **extra: Any) -> str:
    body = {
        "name": f"mock-{secrets.token_hex(3)}",
        "issuer": issuer,
        "clientId": "sessiond-test",
        "clientSecret": "s3cret-of-the-client",
        "scopes": ["openid", "profile", "email"],
        "providerOptions": {"isLinkingAllowed": True, "isCreationAllowed": True},
        **extra,
    }
    reply = await api.call("POST", "/admin/v1/idps/generic_oidc", body=body)
    assert reply.status == 200, reply.body
    return str(reply.body["id"])


async def start(api: Api, idp_id: str, **urls: str) -> tuple[str, str]:
    """(intent id, authUrl) of a new intent."""
    body = {"idpId": idp_id, "urls": {"successUrl": SUCCESS, "failureUrl": FAILURE, **urls}}
    reply = await api.call("POST", "/v2/idp_intents", body=body)
    assert reply.status == 200, reply.body
    auth_url = str(reply.body["authUrl"])
    state = parse_qs(urlsplit(auth_url).query)["state"][0]
    return state, auth_url


async def callback(client: Client, location: str) -> aiohttp.ClientResponse:
    """Follow the provider's redirect to our callback, as the browser would."""
    parts = urlsplit(location)
    assert parts.path == "/idps/callback", location
    return await client.get(f"{parts.path}?{parts.query}", allow_redirects=False)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def signed_in(
    iapi: Api, http: aiohttp.ClientSession, idp_id: str, sub: str
) -> dict[str, str]:
    """A succeeded intent for the provider's user ``sub``: the success URL's parameters."""
    _, auth_url = await start(iapi, idp_id)
    location = await sign_in(http, auth_url, sub)
    answer = await callback(iapi.client, location)
    assert answer.status == 302, await answer.text()
    target = answer.headers["Location"]
    assert target.startswith(SUCCESS + "?"), target
    return query_of(target)


async def link(api: Api, user_id: str, idp_id: str, sub: str) -> None:
    body = {"idpLink": {"idpId": idp_id, "userId": sub, "userName": f"{sub}@idp"}}
    reply = await api.call("POST", f"/v2/users/{user_id}/links", body=body)
    assert reply.status == 200, reply.body


async def linked_sign_in(
    iapi: Api, http: aiohttp.ClientSession, idp_id: str, sub: str
) -> tuple[str, dict[str, str]]:
    """A new user linked to the provider's ``sub``, and a succeeded intent of ``sub``."""
    user = await iapi.human()
    await link(iapi, user, idp_id, sub)
    return user, await signed_in(iapi, http, idp_id, sub)


def intent_check(found: dict[str, str]) -> dict[str, Any]:
    return {"idpIntent": {"idpIntentId": found["id"], "idpIntentToken": found["token"]}}


@pytest.fixture(name="idp")
async def _idp(iapi: Api, oidc_provider: OidcProvider) -> str:
    return await add_oidc_idp(iapi, oidc_provider.issuer)


# -- start ---------------------------------------------------------------------------------------
async def test_start_answers_the_providers_authorization_url_with_state_nonce_and_pkce(
    iapi: Api, idp: str, oidc_provider: OidcProvider
):
    intent_id, auth_url = await start(iapi, idp)
    parts = urlsplit(auth_url)
    assert auth_url.startswith(oidc_provider.issuer)
    query = query_of(auth_url)
    assert query["state"] == intent_id
    assert len(intent_id) >= 22  # unguessable: at least 128 bits
    assert query["client_id"] == "sessiond-test"
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"http://127.0.0.1:{iapi.client.port}/idps/callback"
    assert len(query["nonce"]) >= 22
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    assert "openid" in query["scope"].split()
    assert parts.scheme == "http"


async def test_the_intent_and_its_secrets_are_stored_sealed(
    iapi: Api, idp: str, redis: aioredis.Redis, http: aiohttp.ClientSession
):
    found = await signed_in(iapi, http, idp, "sealed-user")
    stored = await redis.hgetall(f"intent:{{{found['id']}}}")
    assert stored[b"state"] == b"succeeded"
    retrieved = await iapi.call(
        "POST", f"/v2/idp_intents/{found['id']}", body={"idpIntentToken": found["token"]}
    )
    oauth = retrieved.body["idpInformation"]["oauth"]
    for secret in (oauth["accessToken"], oauth["idToken"], found["token"]):
        assert secret.encode() not in stored[b"doc"]


# -- the provider's callback -------------------------------------------------------------------
async def test_a_successful_sign_in_redirects_to_the_success_url_and_retrieve_tells_who(
    iapi: Api, idp: str, http: aiohttp.ClientSession, oidc_provider: OidcProvider
):
    oidc_provider.set_user("ada", {"email": "ada@idp.example", "preferred_username": "ada"})
    found = await signed_in(iapi, http, idp, "ada")
    assert set(found) == {"id", "token"}  # no user: nobody is linked yet
    reply = await iapi.call(
        "POST", f"/v2/idp_intents/{found['id']}", body={"idpIntentToken": found["token"]}
    )
    assert reply.status == 200, reply.body
    info = reply.body["idpInformation"]
    assert info["idpId"] == idp
    assert info["userId"] == "ada"
    assert info["userName"] == "ada"
    assert info["rawInformation"]["email"] == "ada@idp.example"
    assert info["oauth"]["accessToken"]
    assert info["oauth"]["idToken"].count(".") == 2
    assert "userId" not in reply.body


async def test_a_generic_oauth_provider_signs_in_through_its_user_endpoint(
    iapi: Api, http: aiohttp.ClientSession, oidc_provider: OidcProvider
):
    """OAuth 2 without OIDC: the user is who the user endpoint says (``idAttribute``)."""
    async with http.get(f"{oidc_provider.issuer}/.well-known/openid-configuration") as answer:
        discovered = await answer.json()
    body = {
        "name": "oauth-mock",
        "clientId": "sessiond-oauth",
        "clientSecret": "another-secret",
        "authorizationEndpoint": discovered["authorization_endpoint"],
        "tokenEndpoint": discovered["token_endpoint"],
        "userEndpoint": discovered["userinfo_endpoint"],
        "idAttribute": "sub",
        "scopes": ["profile", "email"],
    }
    added = await iapi.call("POST", "/admin/v1/idps/generic_oauth", body=body)
    assert added.status == 200, added.body
    idp = added.body["id"]
    _, auth_url = await start(iapi, idp)
    query = query_of(auth_url)
    assert "nonce" not in query  # no ID token to bind it to
    assert query["code_challenge_method"] == "S256"
    oidc_provider.set_user("grace", {"email": "grace@idp.example", "preferred_username": "g"})
    location = await sign_in(http, auth_url, "grace")
    answer = await callback(iapi.client, location)
    assert answer.status == 302, await answer.text()
    found = query_of(answer.headers["Location"])
    reply = await iapi.call(
        "POST", f"/v2/idp_intents/{found['id']}", body={"idpIntentToken": found["token"]}
    )
    assert reply.status == 200, reply.body
    info = reply.body["idpInformation"]
    assert (info["idpId"], info["userId"]) == (idp, "grace")
    assert info["rawInformation"]["email"] == "grace@idp.example"
    assert "idToken" not in info["oauth"]
    user = await iapi.human()
    await link(iapi, user, idp, "grace")
    session = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert session.status == 201, session.body
    got = await iapi.get(session.body["sessionId"])
    assert "intent" in got.body["session"]["factors"]


async def test_the_success_url_keeps_its_own_query_but_not_a_planted_id_or_token(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    planted = f"{SUCCESS}?flow=42&id=planted&token=planted"
    intent_id, auth_url = await start(iapi, idp, successUrl=planted)
    answer = await callback(iapi.client, await sign_in(http, auth_url, "query-user"))
    assert answer.status == 302
    found = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert found["flow"] == ["42"]
    assert found["id"] == [intent_id]
    assert found["token"] != ["planted"]
    assert len(found["token"]) == 1


async def test_a_linked_user_is_named_in_the_success_redirect_and_by_retrieve(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user, found = await linked_sign_in(iapi, http, idp, "linked-sub")
    assert found["user"] == user
    reply = await iapi.call(
        "POST", f"/v2/idp_intents/{found['id']}", body={"idpIntentToken": found["token"]}
    )
    assert reply.body["userId"] == user


async def test_a_providers_error_answer_redirects_to_the_failure_url_and_the_intent_fails(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    intent_id, auth_url = await start(iapi, idp)
    location = await sign_in(http, auth_url, "someone", deny=True)
    denied = query_of(location)
    assert denied["error"] == "access_denied"
    # RFC 6749 §4.1.2.1: the error answer carries the request's state (the mock omits it,
    # and a callback without state names no intent: 400, see below)
    assert (await callback(iapi.client, location)).status == 400
    answer_query = urlencode({"state": intent_id, **denied})
    answer = await iapi.client.get(f"/idps/callback?{answer_query}", allow_redirects=False)
    assert answer.status == 302
    target = answer.headers["Location"]
    assert target.startswith(FAILURE + "?")
    query = query_of(target)
    assert query["id"] == intent_id
    assert query["error"] == "access_denied"
    assert query["error_description"] == denied["error_description"]
    user = await iapi.human()
    token = await _any_token_for(iapi, intent_id)
    reply = await iapi.create({"checks": {"user": {"userId": user}, **_check(intent_id, token)}})
    assert (reply.status, reply.error_id) == (400, "COMMAND-Df4bw")


async def test_a_tampered_state_is_400_without_a_redirect(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    _, auth_url = await start(iapi, idp)
    location = await sign_in(http, auth_url, "tamper")
    parts = urlsplit(location)
    query = query_of(location)
    query["state"] = secrets.token_urlsafe(18)
    answer = await iapi.client.get(f"{parts.path}?{urlencode(query)}", allow_redirects=False)
    assert answer.status == 400
    assert "Location" not in answer.headers
    body = await answer.json()
    assert body["details"][0]["id"] == "IDP-unknownState"


async def test_a_replayed_callback_is_400_and_leaves_the_intent_as_it_was(
    iapi: Api, idp: str, http: aiohttp.ClientSession, redis: aioredis.Redis
):
    intent_id, auth_url = await start(iapi, idp)
    location = await sign_in(http, auth_url, "replay")
    assert (await callback(iapi.client, location)).status == 302
    before = await redis.hget(f"intent:{{{intent_id}}}", "doc")
    again = await callback(iapi.client, location)
    assert again.status == 400
    assert "Location" not in again.headers
    assert await redis.hget(f"intent:{{{intent_id}}}", "doc") == before


@pytest.mark.parametrize(
    "query",
    [
        "",
        "code=abc",
        "state=",
        "error=access_denied",
        "state=x&code=",
        "state=" + "x" * 201 + "&code=abc",
        "state=x&code=" + "c" * 2049,
        "state=x&code=%C3%A9",
        "state=x&error=denied&error_description=%0A",
    ],
)
async def test_a_callback_without_state_or_code_or_out_of_rfc6749_is_400(iapi: Api, query: str):
    answer = await iapi.client.get(f"/idps/callback?{query}", allow_redirects=False)
    assert answer.status == 400
    body = await answer.json()
    assert body["code"] in (3, 9)
    assert "Location" not in answer.headers


async def test_a_callback_with_a_live_state_but_no_code_is_400_and_the_intent_waits(
    iapi: Api, idp: str, redis: aioredis.Redis, http: aiohttp.ClientSession
):
    intent_id, auth_url = await start(iapi, idp)
    answer = await iapi.client.get(f"/idps/callback?state={intent_id}", allow_redirects=False)
    assert answer.status == 400
    assert "Location" not in answer.headers
    assert (await redis.hget(f"intent:{{{intent_id}}}", "state")) == b"started"
    location = await sign_in(http, auth_url, "patient-user")
    assert (await callback(iapi.client, location)).status == 302


async def test_a_wrong_nonce_fails_the_intent_with_invalid_id_token(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    intent_id, auth_url = await start(iapi, idp)
    parts = urlsplit(auth_url)
    query = query_of(auth_url)
    query["nonce"] = "not-the-nonce-we-sent-" + secrets.token_hex(4)
    tampered = urlunsplit(parts._replace(query=urlencode(query)))
    location = await sign_in(http, tampered, "nonce-user")
    answer = await callback(iapi.client, location)
    assert answer.status == 302
    target = answer.headers["Location"]
    assert target.startswith(FAILURE + "?")
    assert query_of(target)["error"] == "invalid_id_token"
    assert query_of(target)["id"] == intent_id


async def test_an_id_token_signed_by_an_unknown_key_fails_the_intent(
    iapi: Api, http: aiohttp.ClientSession, foreign_key_provider: OidcProvider
):
    """Five forged tokens in a row: each fails; the key set is fetched once, refetched once."""
    idp = await add_oidc_idp(iapi, foreign_key_provider.issuer)
    for attempt in range(5):
        _, auth_url = await start(iapi, idp)
        location = await sign_in(http, auth_url, f"forged-{attempt}")
        answer = await callback(iapi.client, location)
        assert answer.status == 302
        target = answer.headers["Location"]
        assert target.startswith(FAILURE + "?")
        assert query_of(target)["error"] == "invalid_id_token"
    # the unknown key may be a rotation: one refetch, then none within JWKS_REFETCH_S
    assert foreign_key_provider.jwks_fetches == 2


async def test_a_provider_that_rotates_its_signing_key_is_followed_once(
    iapi: Api, http: aiohttp.ClientSession, rotating_provider: OidcProvider
):
    """The key set is cached; an unknown kid (a rotation) refetches it, once."""
    idp = await add_oidc_idp(iapi, rotating_provider.issuer)
    await signed_in(iapi, http, idp, "before-rotation")
    await signed_in(iapi, http, idp, "still-cached")
    assert rotating_provider.jwks_fetches == 1
    rotating_provider.rotated = True
    await signed_in(iapi, http, idp, "after-rotation")
    await signed_in(iapi, http, idp, "new-key-cached")
    assert rotating_provider.jwks_fetches == 2


async def test_a_provider_that_is_down_is_a_clear_503_and_nothing_is_started(
    iapi: Api, redis: aioredis.Redis
):
    idp = await add_oidc_idp(iapi, f"http://127.0.0.1:{_free_port()}")
    before = set(await redis.keys("intent:*"))
    started = asyncio.get_running_loop().time()
    reply = await iapi.call(
        "POST",
        "/v2/idp_intents",
        body={"idpId": idp, "urls": {"successUrl": SUCCESS, "failureUrl": FAILURE}},
    )
    assert asyncio.get_running_loop().time() - started < 3
    assert (reply.status, reply.error_id) == (503, "IDP-unreachable")
    assert set(await redis.keys("intent:*")) == before


@pytest.mark.settings(idp_timeout_s=1.0)
async def test_a_provider_that_hangs_at_the_token_exchange_fails_the_intent_in_time(
    iapi: Api, http: aiohttp.ClientSession, hanging_token_provider: OidcProvider
):
    idp = await add_oidc_idp(iapi, hanging_token_provider.issuer)
    _, auth_url = await start(iapi, idp)
    location = await sign_in(http, auth_url, "patient")
    started = asyncio.get_running_loop().time()
    answer = await callback(iapi.client, location)
    assert asyncio.get_running_loop().time() - started < 5
    assert answer.status == 302
    assert answer.headers["Location"].startswith(FAILURE + "?")


# -- the session check: checklist items 11-16 ------------------------------------------------
async def test_16_11_set_session_with_a_succeeded_intent_of_the_linked_user(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user, found = await linked_sign_in(iapi, http, idp, "item-11")
    created = await iapi.create({"checks": {"user": {"userId": user}}})
    assert created.status == 201
    sid = created.body["sessionId"]
    reply = await iapi.set(sid, {"checks": intent_check(found)})
    assert reply.status == 200, reply.body
    factors = (await iapi.get(sid)).body["session"]["factors"]
    assert set(factors) == {"user", "intent"}
    assert factors["intent"]["verifiedAt"]


async def test_16_12_user_and_intent_in_one_create(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user, found = await linked_sign_in(iapi, http, idp, "item-12")
    reply = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert reply.status == 201, reply.body
    factors = (await iapi.get(reply.body["sessionId"])).body["session"]["factors"]
    assert set(factors) == {"user", "intent"}


async def test_16_13_a_link_added_after_the_intent_succeeded_counts(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    found = await signed_in(iapi, http, idp, "item-13")
    assert "user" not in found
    user = await iapi.human()
    refused = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert (refused.status, refused.error_id) == (400, "COMMAND-O8xk3w")
    await link(iapi, user, idp, "item-13")
    reply = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert reply.status == 201, reply.body


async def test_16_14_a_started_intent_with_token_false_fails(iapi: Api, idp: str):
    intent_id, _ = await start(iapi, idp)
    user = await iapi.human()
    created = await iapi.create({"checks": {"user": {"userId": user}}})
    sid = created.body["sessionId"]
    reply = await iapi.set(sid, {"checks": _check(intent_id, "false")})
    assert (reply.status, reply.error_id) == (403, "CRYPTO-Sf4gt")
    assert reply.body["message"].startswith("Intent Token is invalid") or reply.body["code"] == 7


async def test_a_started_intent_with_its_own_token_has_not_succeeded(iapi: Api, idp: str):
    intent_id, _ = await start(iapi, idp)
    user = await iapi.human()
    token = await _any_token_for(iapi, intent_id)
    reply = await iapi.create({"checks": {"user": {"userId": user}, **_check(intent_id, token)}})
    assert (reply.status, reply.error_id) == (400, "COMMAND-Df4bw")


async def test_16_15_a_consumed_intent_fails_even_on_the_same_session(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user, found = await linked_sign_in(iapi, http, idp, "item-15")
    created = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert created.status == 201
    again = await iapi.set(created.body["sessionId"], {"checks": intent_check(found)})
    assert (again.status, again.error_id) == (400, "COMMAND-Df4bw")
    other = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert (other.status, other.error_id) == (400, "COMMAND-Df4bw")


@pytest.mark.slow
@pytest.mark.settings(idp_intent_lifetime="1s")
async def test_16_16_an_expired_intent_fails(iapi: Api, idp: str, http: aiohttp.ClientSession):
    user, found = await linked_sign_in(iapi, http, idp, "item-16")
    await asyncio.sleep(2)
    reply = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert (reply.status, reply.error_id) == (400, "COMMAND-SAf42")


async def test_an_intent_of_a_provider_deleted_since_signs_nobody_in(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user, found = await linked_sign_in(iapi, http, idp, "deleted-provider")
    assert found["user"] == user  # the linked user was named at success
    assert (await iapi.call("DELETE", f"/admin/v1/idps/{idp}")).status == 200
    reply = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    assert (reply.status, reply.error_id) == (400, "IDP-removed")


async def test_an_intent_of_another_user_is_refused(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    alice, bob = await iapi.human(), await iapi.human()
    await link(iapi, alice, idp, "alice-at-idp")
    found = await signed_in(iapi, http, idp, "alice-at-idp")
    reply = await iapi.create({"checks": {"user": {"userId": bob}, **intent_check(found)}})
    assert (reply.status, reply.error_id) == (400, "COMMAND-O8xk3w")


@pytest.mark.parametrize(
    ("token", "error_id"),
    [("", "CRYPTO-Sfefs"), ("garbage", "CRYPTO-Sf4gt"), ("00000000.AAAA", "CRYPTO-Sf4gt")],
)
async def test_malformed_intent_tokens_are_403(iapi: Api, idp: str, token: str, error_id: str):
    intent_id, _ = await start(iapi, idp)
    user = await iapi.human()
    reply = await iapi.create({"checks": {"user": {"userId": user}, **_check(intent_id, token)}})
    if token == "":
        assert reply.status == 400  # an empty token fails the field's 1..200 bound first
    else:
        assert (reply.status, reply.error_id) == (403, error_id)


async def test_the_token_of_one_intent_does_not_open_another(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user = await iapi.human()
    await link(iapi, user, idp, "two-intents")
    first = await signed_in(iapi, http, idp, "two-intents")
    second = await signed_in(iapi, http, idp, "two-intents")
    mixed = {"id": second["id"], "token": first["token"]}
    reply = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(mixed)}})
    assert (reply.status, reply.error_id) == (403, "CRYPTO-CRYPTO")


async def test_sessions_racing_for_one_intent_exactly_one_wins(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    user, found = await linked_sign_in(iapi, http, idp, "race")
    sessions = [
        (await iapi.create({"checks": {"user": {"userId": user}}})).body["sessionId"]
        for _ in range(12)
    ]
    replies = await asyncio.gather(
        *(iapi.set(sid, {"checks": intent_check(found)}) for sid in sessions)
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] + [400] * 11, [r.body for r in replies]
    with_intent = [
        sid for sid in sessions if "intent" in (await iapi.get(sid)).body["session"]["factors"]
    ]
    assert len(with_intent) == 1


async def test_an_intent_session_is_a_full_bearer(iapi: Api, idp: str, http: aiohttp.ClientSession):
    user, found = await linked_sign_in(iapi, http, idp, "bearer")
    created = await iapi.create({"checks": {"user": {"userId": user}, **intent_check(found)}})
    sid, token = created.body["sessionId"], created.body["sessionToken"]
    own = await iapi.get(sid, token=token)
    assert own.status == 200, own.body
    assert "intent" in own.body["session"]["factors"]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "urls",
    [
        {"successUrl": "not a url", "failureUrl": FAILURE},
        {"successUrl": SUCCESS, "failureUrl": "/relative"},
        {"successUrl": "https://x.example/" + "a" * 2048, "failureUrl": FAILURE},
        {"successUrl": "", "failureUrl": FAILURE},
        {"successUrl": "javascript:alert(1)", "failureUrl": FAILURE},
    ],
)
async def test_bad_redirect_urls_are_400_and_nothing_is_written(
    iapi: Api, idp: str, redis: aioredis.Redis, urls: dict[str, str]
):
    before = set(await redis.keys("intent:*"))
    reply = await iapi.call("POST", "/v2/idp_intents", body={"idpId": idp, "urls": urls})
    assert (reply.status, reply.body["code"]) == (400, 3)
    assert set(await redis.keys("intent:*")) == before


async def test_an_unknown_idp_is_404(iapi: Api):
    body = {"idpId": "no-such-idp", "urls": {"successUrl": SUCCESS, "failureUrl": FAILURE}}
    reply = await iapi.call("POST", "/v2/idp_intents", body=body)
    assert (reply.status, reply.error_id) == (404, "COMMAND-0x0idp")


async def test_ldap_is_refused_not_ignored(iapi: Api, idp: str):
    body = {"idpId": idp, "ldap": {"username": "u", "password": "p"}}
    reply = await iapi.call("POST", "/v2/idp_intents", body=body)
    assert (reply.status, reply.body["code"]) == (501, 12)


async def test_retrieve_needs_the_intents_own_token(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    found = await signed_in(iapi, http, idp, "retriever")
    path = f"/v2/idp_intents/{found['id']}"
    assert (await iapi.call("POST", path, body={"idpIntentToken": "x"})).status == 403
    started, _ = await start(iapi, idp)
    own = await _any_token_for(iapi, started)
    reply = await iapi.call("POST", f"/v2/idp_intents/{started}", body={"idpIntentToken": own})
    assert (reply.status, reply.error_id) == (400, "IDP-Hk38e")


async def test_a_caller_without_session_write_may_not_start_or_retrieve(iapi: Api, idp: str):
    _, pat = await iapi.machine_with_pat([])
    body = {"idpId": idp, "urls": {"successUrl": SUCCESS, "failureUrl": FAILURE}}
    assert (await iapi.call("POST", "/v2/idp_intents", pat, body)).status == 403


# -- master key rotation -----------------------------------------------------------------------
OLD_KEY, NEW_KEY = new_master_key(), new_master_key()


async def _idp_sealed_under_old_key(redis_url: str, issuer: str) -> str:
    """A provider configured by a service that still had only the old master key."""
    from app.application import create_app
    from app.process.bootstrap import bootstrap

    settings = make_settings(redis_url, master_key=OLD_KEY)
    await bootstrap(settings, dev_mode=False)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        return await add_oidc_idp(Api(client), issuer)


async def _sealed_secret(redis: aioredis.Redis, idp_id: str) -> str:
    doc = await redis.hget(keys.idp(idp_id), "doc")
    assert isinstance(doc, bytes)
    return msgspec.msgpack.decode(doc, type=IdpConfig).sealed_secret


@pytest.mark.settings(master_key=NEW_KEY, master_key_old=OLD_KEY)
async def test_a_client_secret_sealed_before_a_rotation_is_resealed_at_its_next_use(
    iapi: Api,
    http: aiohttp.ClientSession,
    redis: aioredis.Redis,
    redis_url: str,
    oidc_provider: OidcProvider,
):
    idp = await _idp_sealed_under_old_key(redis_url, oidc_provider.issuer)
    new_ring = Keyring.from_text(NEW_KEY)
    assert new_ring.needs_reseal(await _sealed_secret(redis, idp))
    await signed_in(iapi, http, idp, "rotation-user")
    resealed = await _sealed_secret(redis, idp)
    assert not new_ring.needs_reseal(resealed)
    assert new_ring.open(secret_purpose(idp), resealed) == b"s3cret-of-the-client"


@pytest.mark.settings(master_key=NEW_KEY)
async def test_a_client_secret_no_key_opens_fails_the_intent_clearly(
    iapi: Api, http: aiohttp.ClientSession, redis_url: str, oidc_provider: OidcProvider
):
    idp = await _idp_sealed_under_old_key(redis_url, oidc_provider.issuer)
    intent_id, auth_url = await start(iapi, idp)
    answer = await callback(iapi.client, await sign_in(http, auth_url, "orphan-user"))
    assert answer.status == 302
    failed = query_of(answer.headers["Location"])
    assert answer.headers["Location"].startswith(FAILURE + "?")
    assert (failed["id"], failed["error"]) == (intent_id, "server_error")


# -- the Connect surface -----------------------------------------------------------------------
async def test_the_intent_rpcs_are_served_over_connect(
    iapi: Api, idp: str, http: aiohttp.ClientSession
):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    base = "/zitadel.user.v2.UserService"
    body = {"idpId": idp, "urls": {"successUrl": SUCCESS, "failureUrl": FAILURE}}
    started = await iapi.client.post(
        f"{base}/StartIdentityProviderIntent", json=body, headers=headers
    )
    assert started.status == 200
    auth_url = (await started.json())["authUrl"]
    location = await sign_in(http, auth_url, "connect-user")
    answer = await callback(iapi.client, location)
    found = query_of(answer.headers["Location"])
    retrieved = await iapi.client.post(
        f"{base}/RetrieveIdentityProviderIntent",
        json={"idpIntentId": found["id"], "idpIntentToken": found["token"]},
        headers=headers,
    )
    assert retrieved.status == 200
    assert (await retrieved.json())["idpInformation"]["userId"] == "connect-user"


# -- helpers -----------------------------------------------------------------------------------
def _check(intent_id: str, token: str) -> dict[str, Any]:
    return {"idpIntent": {"idpIntentId": intent_id, "idpIntentToken": token}}


async def _any_token_for(iapi: Api, intent_id: str) -> str:
    """The intent's genuine token, as the service would hand it out (sealed with its key)."""
    del iapi  # the suite's master key is the service's
    return Keyring.from_text(MASTER_KEY).seal(TOKEN_PURPOSE, intent_id.encode())


# -- logs --------------------------------------------------------------------------------------
@pytest.mark.slow
async def test_no_secret_of_the_flow_reaches_the_log(
    redis_url: str, tmp_path: Path, oidc_provider: OidcProvider, http: aiohttp.ClientSession
):
    """The real ``python -m app`` at debug level: a sign-in, a session check, a replay."""
    port = _free_port()
    log = tmp_path / "stderr.log"
    secret = "client-secret-" + secrets.token_urlsafe(24)
    with logged_server(
        redis_url, log, log_level="debug", http_port=port, public_url=f"http://127.0.0.1:{port}"
    ) as running:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

        async def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with http.post(f"{running.url}{path}", json=body, headers=auth) as answer:
                assert answer.status in (200, 201), await answer.text()
                return dict(await answer.json())

        idp = await call(
            "/admin/v1/idps/generic_oidc",
            {
                "name": "logged",
                "issuer": oidc_provider.issuer,
                "clientId": "sessiond-test",
                "clientSecret": secret,
                "scopes": ["openid", "profile"],
            },
        )
        started = await call(
            "/v2/idp_intents",
            {"idpId": idp["id"], "urls": {"successUrl": SUCCESS, "failureUrl": FAILURE}},
        )
        location = await sign_in(http, started["authUrl"], "logged-user")
        code = query_of(location)["code"]
        async with http.get(location, allow_redirects=False) as answer:
            assert answer.status == 302
            found = query_of(answer.headers["Location"])
        retrieved = await call(f"/v2/idp_intents/{found['id']}", {"idpIntentToken": found["token"]})
        oauth = retrieved["idpInformation"]["oauth"]
        user = await call(
            "/v2/users/human",
            {
                "username": "logged-user",
                "profile": {"givenName": "L", "familyName": "U"},
                "email": {"email": "logged@example.com", "isVerified": True},
                "idpLinks": [{"idpId": idp["id"], "userId": "logged-user", "userName": "l"}],
            },
        )
        session = await call(
            "/v2/sessions", {"checks": {"user": {"userId": user["userId"]}, **intent_check(found)}}
        )
        # a replayed callback: refused, and logged without its code
        async with http.get(location, allow_redirects=False) as answer:
            assert answer.status == 400
        await asyncio.sleep(0.3)
    text = log.read_text()
    nonce = query_of(started["authUrl"])["nonce"]
    for leaked in (
        secret,
        code,
        found["token"],
        oauth["accessToken"],
        oauth["idToken"],
        nonce,
        session["sessionToken"],
        ADMIN_TOKEN,
    ):
        assert leaked not in text
    assert '"route":"/idps/callback"' in text
