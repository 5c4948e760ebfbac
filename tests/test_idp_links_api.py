"""A user's IdP links over real HTTP and Redis: add, list, remove, uniqueness, races, create.

A link (idp, provider user id) belongs to at most one user at a time, whatever the order of
concurrent writers; deleting the user or the link frees it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
import redis.asyncio as aioredis

from storage import keys
from tests.support import ADMIN_TOKEN, PASSWORD, Api, session_history


async def configured_idp(api: Api) -> str:
    body = {
        "name": f"links-{secrets.token_hex(3)}",
        "issuer": "https://idp.example.com",
        "clientId": "client",
        "clientSecret": "secret-of-the-client",
        "scopes": ["openid"],
    }
    reply = await api.call("POST", "/admin/v1/idps/generic_oidc", body=body)
    assert reply.status == 200, reply.body
    return str(reply.body["id"])


def link_body(idp: str, sub: str, name: str = "someone") -> dict[str, Any]:
    return {"idpLink": {"idpId": idp, "userId": sub, "userName": name}}


@pytest.fixture(name="idp")
async def _idp(api: Api) -> str:
    return await configured_idp(api)


async def links_of(api: Api, user: str, token: str | None = None) -> list[dict[str, str]]:
    kwargs: dict[str, Any] = {"token": token} if token else {}
    reply = await api.call("POST", f"/v2/users/{user}/links/_search", body={}, **kwargs)
    assert reply.status == 200, reply.body
    assert reply.body["details"]["totalResult"] == str(len(reply.body.get("result", [])))
    return list(reply.body.get("result", []))


async def test_add_list_and_remove_a_link(api: Api, idp: str, redis: aioredis.Redis):
    user = await api.human()
    added = await api.call("POST", f"/v2/users/{user}/links", body=link_body(idp, "ext-1", "ada"))
    assert added.status == 200, added.body
    assert int(added.body["details"]["sequence"]) > 0
    assert await links_of(api, user) == [{"idpId": idp, "userId": "ext-1", "userName": "ada"}]
    assert await redis.get(keys.idp_link(f"{idp}:ext-1")) == user.encode()
    removed = await api.call("DELETE", f"/v2/users/{user}/links/{idp}/ext-1")
    assert removed.status == 200, removed.body
    assert await links_of(api, user) == []
    assert await redis.get(keys.idp_link(f"{idp}:ext-1")) is None
    again = await api.call("DELETE", f"/v2/users/{user}/links/{idp}/ext-1")
    assert (again.status, again.error_id) == (404, "COMMAND-1M9xR")


async def test_a_link_belongs_to_one_user(api: Api, idp: str):
    alice, bob = await api.human(), await api.human()
    assert (
        await api.call("POST", f"/v2/users/{alice}/links", body=link_body(idp, "x"))
    ).status == 200
    taken = await api.call("POST", f"/v2/users/{bob}/links", body=link_body(idp, "x"))
    assert (taken.status, taken.error_id) == (409, "COMMAND-39nf2")
    assert await links_of(api, bob) == []
    twice = await api.call("POST", f"/v2/users/{alice}/links", body=link_body(idp, "x"))
    assert (twice.status, twice.error_id) == (409, "COMMAND-39nf2")


async def test_users_racing_for_one_link_exactly_one_gets_it(
    api: Api, idp: str, redis: aioredis.Redis
):
    users = [await api.human() for _ in range(8)]
    replies = await asyncio.gather(
        *(api.call("POST", f"/v2/users/{u}/links", body=link_body(idp, "contested")) for u in users)
    )
    winners = [u for u, reply in zip(users, replies, strict=True) if reply.status == 200]
    assert len(winners) == 1, [r.body for r in replies]
    assert all(r.status == 409 for r in replies if r.status != 200)
    assert await redis.get(keys.idp_link(f"{idp}:contested")) == winners[0].encode()
    holders = [u for u in users if await links_of(api, u)]
    assert holders == winners


async def test_deleting_the_user_frees_its_links(api: Api, idp: str, redis: aioredis.Redis):
    user = await api.human()
    await api.call("POST", f"/v2/users/{user}/links", body=link_body(idp, "leaves"))
    assert (await api.call("DELETE", f"/v2/users/{user}")).status == 200
    assert await redis.get(keys.idp_link(f"{idp}:leaves")) is None
    successor = await api.human()
    reply = await api.call("POST", f"/v2/users/{successor}/links", body=link_body(idp, "leaves"))
    assert reply.status == 200, reply.body


async def test_add_human_user_with_idp_links(api: Api, idp: str, redis: aioredis.Redis):
    username = f"linked-{secrets.token_hex(3)}"
    body = {
        "username": username,
        "profile": {"givenName": "Ada", "familyName": "Lovelace"},
        "email": {"email": f"{username}@example.com", "isVerified": True},
        "password": {"password": PASSWORD},
        "idpLinks": [{"idpId": idp, "userId": "from-create", "userName": "ada@idp"}],
    }
    reply = await api.call("POST", "/v2/users/human", body=body)
    assert reply.status == 201, reply.body
    user = reply.body["userId"]
    assert await links_of(api, user) == [
        {"idpId": idp, "userId": "from-create", "userName": "ada@idp"}
    ]
    assert await redis.get(keys.idp_link(f"{idp}:from-create")) == user.encode()
    body["username"] = username + "-2"
    body["email"] = {"email": f"{username}-2@example.com", "isVerified": True}
    taken = await api.call("POST", "/v2/users/human", body=body)
    assert (taken.status, taken.error_id) == (409, "COMMAND-39nf2")
    assert (await api.call("GET", f"/v2/users/{taken.body.get('userId', 'none')}")).status == 404


async def test_a_link_of_an_unconfigured_provider_is_404(api: Api):
    user = await api.human()
    reply = await api.call("POST", f"/v2/users/{user}/links", body=link_body("nope", "x"))
    assert (reply.status, reply.error_id) == (404, "COMMAND-0x0idp")


@pytest.mark.parametrize(
    "link",
    [
        {"idpId": "", "userId": "x", "userName": "n"},
        {"idpId": "i", "userId": "", "userName": "n"},
        {"idpId": "i", "userId": "x" * 201, "userName": "n"},
        {"idpId": "i", "userId": "x"},
    ],
)
async def test_bad_links_are_400(api: Api, link: dict[str, str]):
    user = await api.human()
    reply = await api.call("POST", f"/v2/users/{user}/links", body={"idpLink": link})
    assert (reply.status, reply.body["code"]) == (400, 3)


async def test_only_the_user_or_user_write_may_link(api: Api, idp: str):
    alice, bob = await api.human(), await api.human()
    bob_session = await api.session_for(bob)
    bob_token = bob_session.body["sessionToken"]
    own = await api.call("POST", f"/v2/users/{bob}/links", bob_token, link_body(idp, "bob-ext"))
    assert own.status == 200, own.body
    assert len(await links_of(api, bob, bob_token)) == 1
    other = await api.call("POST", f"/v2/users/{alice}/links", bob_token, link_body(idp, "a"))
    assert other.status == 403


async def test_the_link_rpcs_are_served_over_connect(api: Api, idp: str):
    user = await api.human()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
    base = "/zitadel.user.v2.UserService"
    added = await api.client.post(
        f"{base}/AddIDPLink",
        json={"userId": user, **link_body(idp, "via-connect")},
        headers=headers,
    )
    assert added.status == 200
    listed = await api.client.post(f"{base}/ListIDPLinks", json={"userId": user}, headers=headers)
    assert [link["userId"] for link in (await listed.json())["result"]] == ["via-connect"]
    removed = await api.client.post(
        f"{base}/RemoveIDPLink",
        json={"userId": user, "idpId": idp, "linkedUserId": "via-connect"},
        headers=headers,
    )
    assert removed.status == 200


async def test_deleting_a_provider_removes_every_link_to_it(
    api: Api, idp: str, redis: aioredis.Redis
):
    """ZITADEL's cascade: each user's links to the provider go, links elsewhere stay."""
    other = await configured_idp(api)
    users = [await api.human() for _ in range(3)]
    for index, user in enumerate(users):
        for sub in (f"a{index}", f"b{index}"):
            added = await api.call("POST", f"/v2/users/{user}/links", body=link_body(idp, sub))
            assert added.status == 200, added.body
    kept = await api.call("POST", f"/v2/users/{users[0]}/links", body=link_body(other, "x"))
    assert kept.status == 200, kept.body
    deleted = await api.call("DELETE", f"/admin/v1/idps/{idp}")
    assert deleted.status == 200, deleted.body
    assert [link["idpId"] for link in await links_of(api, users[0])] == [other]
    for user in users[1:]:
        assert await links_of(api, user) == []
    assert await redis.keys("idplink:*") == [keys.idp_link(f"{other}:x").encode()]
    assert not await redis.exists(keys.idp_links_of(idp))  # the provider's index emptied
    history = await session_history(redis, users[1])
    cascaded = [e for e in history if e[b"type"] == b"user.human.externalidp.cascade.removed"]
    assert len(cascaded) == 2
    again = await api.call("POST", f"/v2/users/{users[1]}/links", body=link_body(idp, "a1"))
    assert (again.status, again.error_id) == (404, "COMMAND-0x0idp")
