"""IdP configuration over real HTTP: ZITADEL's admin (instance) and management (org) IdP RPCs.

Both kinds (generic OIDC, generic OAuth 2) are added, read, updated, searched and deleted on
``/admin/v1/idps`` and ``/management/v1/idps``; the client secret is write-only and sealed at
rest; permissions and owners are enforced; bad input writes nothing; concurrent updates lose
nothing; the events carry no secret.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from actors.idp_configs import IdpConfig
from storage import keys
from tests.support import ADMIN_TOKEN, Api, session_history

SECRET = "the-client-secret-" + "q" * 20
ISSUER = "https://idp.example.com"


def oidc_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": f"oidc-{secrets.token_hex(3)}",
        "issuer": ISSUER,
        "clientId": "client-1",
        "clientSecret": SECRET,
        "scopes": ["openid", "email"],
        "isIdTokenMapping": True,
        "usePkce": True,
        "providerOptions": {"isLinkingAllowed": True, "isAutoCreation": True},
        **extra,
    }


def oauth_body(**extra: Any) -> dict[str, Any]:
    return {
        "name": f"oauth-{secrets.token_hex(3)}",
        "clientId": "client-2",
        "clientSecret": SECRET,
        "authorizationEndpoint": "https://oauth.example.com/authorize",
        "tokenEndpoint": "https://oauth.example.com/token",
        "userEndpoint": "https://oauth.example.com/user",
        "idAttribute": "id",
        "scopes": ["user:email"],
        **extra,
    }


async def add(api: Api, kind: str, body: dict[str, Any], prefix: str = "/admin/v1", **kw: Any):
    return await api.call("POST", f"{prefix}/idps/generic_{kind}", body=body, **kw)


async def added(api: Api, kind: str = "oidc", **extra: Any) -> str:
    reply = await add(api, kind, oidc_body(**extra) if kind == "oidc" else oauth_body(**extra))
    assert reply.status == 200, reply.body
    return str(reply.body["id"])


def decoded(doc: bytes) -> IdpConfig:
    return msgspec.msgpack.decode(doc, type=IdpConfig)


async def stored_bytes(redis: aioredis.Redis, idp_id: str) -> bytes:
    stored = await redis.hgetall(keys.idp(idp_id))
    return b"".join(v for v in stored.values() if isinstance(v, bytes))


# -- the instance's providers ------------------------------------------------------------------
async def test_add_and_get_an_oidc_provider_without_its_secret(
    api: Api, redis: aioredis.Redis, instance_id: str
):
    body = oidc_body()
    reply = await add(api, "oidc", body)
    assert reply.status == 200, reply.body
    idp_id = reply.body["id"]
    assert reply.body["details"]["resourceOwner"] == instance_id
    got = await api.call("GET", f"/admin/v1/idps/{idp_id}")
    assert got.status == 200, got.body
    idp = got.body["idp"]
    assert (idp["id"], idp["name"], idp["state"]) == (idp_id, body["name"], "IDP_STATE_ACTIVE")
    assert (idp["type"], idp["owner"]) == ("IDP_TYPE_OIDC", "IDP_OWNER_TYPE_SYSTEM")
    assert idp["config"]["oidc"] == {
        "issuer": ISSUER,
        "clientId": "client-1",
        "scopes": ["openid", "email"],
        "isIdTokenMapping": True,
        "usePkce": True,
    }
    # false flags are left out, as protojson does
    assert idp["config"]["options"] == {"isLinkingAllowed": True, "isAutoCreation": True}
    assert SECRET not in str(got.body)
    assert SECRET.encode() not in await stored_bytes(redis, idp_id)


async def test_add_and_get_an_oauth_provider(api: Api):
    idp_id = await added(api, "oauth")
    idp = (await api.call("GET", f"/admin/v1/idps/{idp_id}")).body["idp"]
    assert idp["type"] == "IDP_TYPE_OAUTH"
    assert "oidc" not in idp["config"]
    assert idp["config"]["oauth"] == {
        "clientId": "client-2",
        "authorizationEndpoint": "https://oauth.example.com/authorize",
        "tokenEndpoint": "https://oauth.example.com/token",
        "userEndpoint": "https://oauth.example.com/user",
        "scopes": ["user:email"],
        "idAttribute": "id",
    }


async def test_an_update_without_a_secret_keeps_the_stored_one(api: Api, redis: aioredis.Redis):
    idp_id = await added(api)
    before = await redis.hget(keys.idp(idp_id), "doc")
    body = oidc_body(name="renamed", clientSecret="")
    reply = await api.call("PUT", f"/admin/v1/idps/generic_oidc/{idp_id}", body=body)
    assert reply.status == 200, reply.body
    idp = (await api.call("GET", f"/admin/v1/idps/{idp_id}")).body["idp"]
    assert idp["name"] == "renamed"
    assert int(idp["details"]["sequence"]) == 2
    after = await redis.hget(keys.idp(idp_id), "doc")
    assert isinstance(before, bytes)
    assert isinstance(after, bytes)
    assert decoded(after).sealed_secret == decoded(before).sealed_secret
    assert decoded(after).name == "renamed"


async def test_an_update_with_a_new_secret_replaces_it_sealed(api: Api, redis: aioredis.Redis):
    idp_id = await added(api, "oauth")
    before = await redis.hget(keys.idp(idp_id), "doc")
    new_secret = "rotated-secret-" + "z" * 20
    body = oauth_body(clientSecret=new_secret, idAttribute="sub")
    reply = await api.call("PUT", f"/admin/v1/idps/generic_oauth/{idp_id}", body=body)
    assert reply.status == 200, reply.body
    after = await redis.hget(keys.idp(idp_id), "doc")
    assert isinstance(before, bytes)
    assert isinstance(after, bytes)
    assert decoded(after).sealed_secret != decoded(before).sealed_secret
    assert new_secret.encode() not in await stored_bytes(redis, idp_id)
    idp = (await api.call("GET", f"/admin/v1/idps/{idp_id}")).body["idp"]
    assert idp["config"]["oauth"]["idAttribute"] == "sub"


async def test_an_update_of_the_other_kind_is_404(api: Api):
    idp_id = await added(api, "oidc")
    reply = await api.call("PUT", f"/admin/v1/idps/generic_oauth/{idp_id}", body=oauth_body())
    assert reply.status == 404
    assert reply.body["details"][0]["id"] == "COMMAND-0x0idp"


async def test_search_filters_by_name_and_pages(api: Api):
    names = ["Corporate SSO", "corporate github", "Partner"]
    ids = [
        (await add(api, "oidc", oidc_body(name=name))).body["id"] for name in names
    ]  # oldest first
    everything = await api.call("POST", "/admin/v1/idps/_search", body={"query": {"asc": True}})
    assert everything.status == 200, everything.body
    assert [idp["id"] for idp in everything.body["result"]] == ids
    assert everything.body["details"]["totalResult"] == "3"
    newest_first = await api.call("POST", "/admin/v1/idps/_search", body={})
    assert [idp["id"] for idp in newest_first.body["result"]] == ids[::-1]
    query = {"name": "corporate", "method": "TEXT_QUERY_METHOD_STARTS_WITH_IGNORE_CASE"}
    found = await api.call(
        "POST",
        "/admin/v1/idps/_search",
        body={"query": {"asc": True}, "queries": [{"idpNameQuery": query}]},
    )
    assert [idp["name"] for idp in found.body["result"]] == names[:2]
    page = await api.call(
        "POST", "/admin/v1/idps/_search", body={"query": {"asc": True, "offset": 1, "limit": 1}}
    )
    assert [idp["id"] for idp in page.body["result"]] == ids[1:2]
    assert page.body["details"]["totalResult"] == "3"


async def test_delete_removes_the_provider(api: Api, redis: aioredis.Redis):
    idp_id = await added(api)
    deleted = await api.call("DELETE", f"/admin/v1/idps/{idp_id}")
    assert deleted.status == 200, deleted.body
    assert (await api.call("GET", f"/admin/v1/idps/{idp_id}")).status == 404
    assert (await api.call("DELETE", f"/admin/v1/idps/{idp_id}")).status == 404
    assert not await redis.exists(keys.idp(idp_id))
    assert not await redis.sismember(keys.idps_of(""), idp_id)
    start = {"idpId": idp_id, "urls": {"successUrl": ISSUER, "failureUrl": ISSUER}}
    assert (await api.call("POST", "/v2/idp_intents", body=start)).status == 404


async def test_unknown_ids_are_404(api: Api):
    for method, path, body in [
        ("GET", "/admin/v1/idps/nope", None),
        ("DELETE", "/admin/v1/idps/nope", None),
        ("PUT", "/admin/v1/idps/generic_oidc/nope", oidc_body()),
        ("PUT", "/admin/v1/idps/generic_oauth/nope", oauth_body()),
    ]:
        reply = await api.call(method, path, body=body)
        assert reply.status == 404, (method, path, reply.body)
        assert reply.body["details"][0]["id"] == "COMMAND-0x0idp"


async def test_every_step_is_an_event_without_the_secret(
    api: Api, redis: aioredis.Redis, instance_id: str
):
    idp_id = await added(api)
    await api.call("PUT", f"/admin/v1/idps/generic_oidc/{idp_id}", body=oidc_body())
    await api.call("DELETE", f"/admin/v1/idps/{idp_id}")
    history = await session_history(redis, idp_id)
    assert [e[b"type"] for e in history] == [
        b"instance.idp.oidc.added",
        b"instance.idp.oidc.changed",
        b"instance.idp.removed",
    ]
    assert [e[b"sequence"] for e in history] == [b"1", b"2", b"3"]
    assert all(e[b"aggregateType"] == b"idp" for e in history)
    assert all(e[b"resourceOwner"] == instance_id.encode() for e in history)
    raw = b"".join(value for event in history for value in event.values())
    assert SECRET.encode() not in raw
    assert b"sealed" not in raw.lower()


# -- concurrency -------------------------------------------------------------------------------
async def test_concurrent_updates_lose_none(api: Api):
    """Twelve writers rename one provider at once: each gets one revision, none overwritten."""
    idp_id = await added(api)
    replies = await asyncio.gather(
        *(
            api.call("PUT", f"/admin/v1/idps/generic_oidc/{idp_id}", body=oidc_body(name=f"n{i}"))
            for i in range(12)
        )
    )
    assert [r.status for r in replies] == [200] * 12, [r.body for r in replies]
    sequences = sorted(int(r.body["details"]["sequence"]) for r in replies)
    assert sequences == list(range(2, 14))
    last = max(replies, key=lambda r: int(r.body["details"]["sequence"]))
    idp = (await api.call("GET", f"/admin/v1/idps/{idp_id}")).body["idp"]
    assert idp["details"]["sequence"] == "13"
    assert idp["name"] == f"n{replies.index(last)}"


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "change"),
    [
        ("oidc", {"name": ""}),
        ("oidc", {"name": "x" * 201}),
        ("oidc", {"issuer": "not a url"}),
        ("oidc", {"issuer": "ftp://idp.example.com"}),
        ("oidc", {"issuer": "https://user:pw@idp.example.com"}),
        ("oidc", {"issuer": "https://idp.example.com/" + "a" * 2048}),
        ("oidc", {"clientSecret": ""}),
        ("oidc", {"scopes": ["s"] * 21}),
        ("oidc", {"scopes": "openid"}),
        ("oidc", {"usePkce": "yes"}),
        ("oidc", {"providerOptions": {"isLinkingAllowed": "sure"}}),
        ("oauth", {"tokenEndpoint": "/relative"}),
        ("oauth", {"userEndpoint": "https://"}),
        ("oauth", {"idAttribute": ""}),
        ("oauth", {"authorizationEndpoint": "https://idp.example.com:99999/x"}),
    ],
)
async def test_bad_input_is_400_and_stores_nothing(
    api: Api, redis: aioredis.Redis, kind: str, change: dict[str, Any]
):
    body = (oidc_body if kind == "oidc" else oauth_body)(**change)
    reply = await add(api, kind, body)
    assert reply.status == 400, reply.body
    assert set(reply.body) == {"code", "message", "details"}
    assert reply.body["code"] == 3
    assert not await redis.keys("idp:*")
    assert not await redis.exists(keys.idps_of(""))


async def test_a_bad_update_is_400_and_changes_nothing(api: Api, redis: aioredis.Redis):
    idp_id = await added(api)
    before = await redis.hgetall(keys.idp(idp_id))
    bad = oidc_body(issuer="javascript:alert(1)")
    reply = await api.call("PUT", f"/admin/v1/idps/generic_oidc/{idp_id}", body=bad)
    assert reply.status == 400, reply.body
    assert await redis.hgetall(keys.idp(idp_id)) == before


async def test_a_malformed_body_is_400(api: Api):
    reply = await api.client.post(
        "/admin/v1/idps/generic_oidc",
        data=b"{not json",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert set(await reply.json()) == {"code", "message", "details"}


# -- permissions and owners --------------------------------------------------------------------
async def test_the_admin_api_needs_the_instance_permissions(api: Api):
    idp_id = await added(api)
    _, viewer = await api.machine_with_pat(["IAM_OWNER_VIEWER"])
    _, nobody = await api.machine_with_pat([])
    assert (await api.call("GET", f"/admin/v1/idps/{idp_id}", viewer)).status == 200
    assert (await api.call("POST", "/admin/v1/idps/_search", viewer, {})).status == 200
    assert (await add(api, "oidc", oidc_body(), token=viewer)).status == 403
    put = await api.call("PUT", f"/admin/v1/idps/generic_oidc/{idp_id}", viewer, oidc_body())
    assert put.status == 403
    assert (await api.call("DELETE", f"/admin/v1/idps/{idp_id}", viewer)).status == 403
    assert (await api.call("GET", f"/admin/v1/idps/{idp_id}", nobody)).status == 403
    assert (await api.call("GET", f"/admin/v1/idps/{idp_id}", "")).status == 401


async def test_an_org_owner_manages_its_orgs_providers_only(api: Api):
    org = await api.org()
    other_org = await api.org()
    _, owner = await api.machine_with_pat(["ORG_OWNER"], org)
    instance_idp = await added(api)
    mine = await add(api, "oauth", oauth_body(), "/management/v1", token=owner)
    assert mine.status == 200, mine.body
    assert mine.body["details"]["resourceOwner"] == org
    my_idp = mine.body["id"]
    got = await api.call("GET", f"/management/v1/idps/{my_idp}", owner)
    assert got.body["idp"]["owner"] == "IDP_OWNER_TYPE_ORG"
    listed = await api.call("POST", "/management/v1/idps/_search", owner, {"query": {"asc": True}})
    assert [idp["id"] for idp in listed.body["result"]] == [instance_idp, my_idp]
    # the instance's providers are readable, not writable, from an org
    assert (await api.call("GET", f"/management/v1/idps/{instance_idp}", owner)).status == 200
    assert (await api.call("DELETE", f"/management/v1/idps/{instance_idp}", owner)).status == 404
    # the org's provider is not the instance's, and not another org's
    assert (await api.call("GET", f"/admin/v1/idps/{my_idp}")).status == 404
    assert (await add(api, "oidc", oidc_body(), token=owner)).status == 403
    foreign = await api.client.get(
        f"/management/v1/idps/{my_idp}",
        headers={"Authorization": f"Bearer {owner}", "x-zitadel-orgid": other_org},
    )
    assert foreign.status == 403
    deleted = await api.call("DELETE", f"/management/v1/idps/{my_idp}", owner)
    assert deleted.status == 200, deleted.body


async def test_the_instance_admin_names_an_org_with_the_org_header(api: Api):
    org = await api.org()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-zitadel-orgid": org}
    reply = await api.client.post(
        "/management/v1/idps/generic_oidc", json=oidc_body(), headers=headers
    )
    assert reply.status == 200, await reply.text()
    idp_id = (await reply.json())["id"]
    got = await api.client.get(f"/management/v1/idps/{idp_id}", headers=headers)
    assert (await got.json())["idp"]["details"]["resourceOwner"] == org


async def test_the_idp_rpcs_are_served_over_connect(api: Api):
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    base = "/zitadel.admin.v1.AdminService"
    reply = await api.client.post(
        f"{base}/AddGenericOAuthProvider", json=oauth_body(), headers=headers
    )
    assert reply.status == 200, await reply.text()
    idp_id = (await reply.json())["id"]
    got = await api.client.post(f"{base}/GetProviderByID", json={"id": idp_id}, headers=headers)
    assert (await got.json())["idp"]["type"] == "IDP_TYPE_OAUTH"
    updated = await api.client.post(
        f"{base}/UpdateGenericOAuthProvider",
        json={"id": idp_id, **oauth_body(name="via-connect")},
        headers=headers,
    )
    assert updated.status == 200, await updated.text()
    listed = await api.client.post(f"{base}/ListProviders", json={}, headers=headers)
    assert [idp["name"] for idp in (await listed.json())["result"]] == ["via-connect"]
    deleted = await api.client.post(f"{base}/DeleteProvider", json={"id": idp_id}, headers=headers)
    assert deleted.status == 200
    missing = await api.client.post(f"{base}/GetProviderByID", json={"id": idp_id}, headers=headers)
    assert missing.status == 404
    assert (await missing.json())["code"] == "not_found"
