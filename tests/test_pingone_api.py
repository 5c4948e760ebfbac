"""PingOne's Sessions API against the real application, over HTTP, on real Redis.

The seed's own example (``Create Session``) end to end and field by field; the same sessions
through both facades; idle expiry and activity; the ``ST`` token's lifecycle; sign-out;
a user's sessions; and PingOne's error shape for bad input.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from storage import keys
from tests.driven import DrivenClock
from tests.support import ADMIN_TOKEN, Api, Reply, b64, session_history
from tests.test_sessions_api import _clock

__all__ = ["_clock"]  # the driven-clock fixture, shared

SEED_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:103.0) Gecko/20100101 Firefox/103.0"
POLICY_ID = "874d5c7d-5e1c-4e73-b2b5-dfe1453b02f5"
LOGOUT = "application/vnd.pingidentity.sso.session.logout"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def seed_body(user_id: str, token: str, active_at: str, signed_on_at: str) -> dict[str, Any]:
    """The seed's request body, with its placeholders filled in."""
    return {
        "activeAt": active_at,
        "idleTimeoutInMinutes": "144000",
        "lastSignOn": {
            "authenticators": ["pwd"],
            "remoteIp": "174.1.62.19",
            "withAuthenticator": {
                "pwd": {"at": signed_on_at, "policy": {"id": POLICY_ID, "type": "PINGONE"}}
            },
        },
        "token": token,
        "user": {"id": user_id},
        "userAgent": SEED_UA,
    }


class PingOne:
    """A PingOne API client for one environment (this instance)."""

    def __init__(self, client: TestClient[web.Request, web.Application], env_id: str) -> None:
        self.client = client
        self.env_id = env_id
        self.base = f"/v1/environments/{env_id}"

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = ADMIN_TOKEN,
        st: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if st is not None:
            sent["Cookie"] = f"ST={st}"
        response = await self.client.request(
            method, self.base + path, json=body, data=data, headers=sent
        )
        raw = await response.read()
        payload = await response.json(content_type=None) if raw else {}
        return Reply(response.status, payload)

    async def create(self, body: dict[str, Any], **kwargs: Any) -> Reply:
        return await self.call("POST", "/sessions", body, **kwargs)

    async def signed_on(self, user_id: str, **overrides: Any) -> tuple[dict[str, Any], str]:
        """A session created from the seed's body; returns it and its ST token."""
        token = secrets.token_urlsafe(24)
        at = iso(now())
        body = {**seed_body(user_id, token, at, at), **overrides}
        reply = await self.create(body)
        assert reply.status == 201, reply.body
        return reply.body, token


@pytest.fixture(name="p1")
def _p1(client: TestClient[web.Request, web.Application], instance_id: str) -> PingOne:
    return PingOne(client, instance_id)


# -- the seed ---------------------------------------------------------------------------------
async def test_the_seed_example_end_to_end_field_by_field(p1: PingOne, api: Api):
    user = await api.human()
    token = secrets.token_urlsafe(24)
    active_at = iso(now() - dt.timedelta(seconds=5))
    signed_on_at = iso(now() - dt.timedelta(seconds=6))
    reply = await p1.create(seed_body(user, token, active_at, signed_on_at))
    assert reply.status == 201, reply.body
    body = reply.body
    host = f"http://{p1.client.host}:{p1.client.port}"
    env = f"{host}/v1/environments/{p1.env_id}"
    session_id = body["id"]
    policy = {"id": POLICY_ID, "type": "PINGONE"}
    assert list(body) == [
        "_links",
        "id",
        "environment",
        "user",
        "createdAt",
        "activeAt",
        "idleTimeoutInMinutes",
        "userAgent",
        "browser",
        "operatingSystem",
        "device",
        "locations",
        "lastSignOn",
        "expiresAt",
    ]
    assert body["_links"] == {
        "self": {"href": f"{env}/sessions/{session_id}"},
        "environment": {"href": env},
        "user": {"href": f"{env}/users/{user}"},
    }
    assert body["environment"] == {"id": p1.env_id}
    assert body["user"] == {"id": user}
    assert abs(parse(body["createdAt"]) - now()) < dt.timedelta(seconds=5)
    assert body["activeAt"] == active_at  # as sent
    assert body["idleTimeoutInMinutes"] == 144000  # a number, though sent as a string
    assert body["userAgent"] == SEED_UA
    assert body["browser"] == {"name": "Firefox", "version": "103.0"}
    assert body["operatingSystem"] == {"name": "Mac OS X", "version": "10.15"}
    assert body["device"] == {"type": "Mac"}
    assert body["locations"] == [{"at": signed_on_at, "remoteIp": "174.1.62.19"}]
    assert body["lastSignOn"] == {
        "remoteIp": "174.1.62.19",
        "authenticators": ["pwd"],
        "withAuthenticator": {"pwd": {"policy": policy, "at": signed_on_at}},
        "policy": policy,
        "at": signed_on_at,
    }
    assert parse(body["expiresAt"]) == parse(active_at) + dt.timedelta(minutes=144000)
    # the same resource by id and by token
    by_id = await p1.call("GET", f"/sessions/{session_id}")
    assert by_id.status == 200
    assert by_id.body == body
    mine = await p1.call("GET", "/sessions/me", st=token)
    assert mine.status == 200
    assert mine.body["id"] == session_id


async def test_an_anonymous_session_ignores_the_sign_on_and_records_the_caller(p1: PingOne):
    at = iso(now())
    body = seed_body("ignored", "t" * 20, at, at)
    del body["user"]
    reply = await p1.create(body)
    assert reply.status == 201, reply.body
    assert reply.body["user"] is None
    assert "user" not in reply.body["_links"]
    assert reply.body["lastSignOn"] is None
    assert reply.body["locations"][0]["remoteIp"] == "127.0.0.1"  # the connection's address


@pytest.mark.settings(public_url="https://sso.example.com", trusted_proxies="127.0.0.0/8")
async def test_links_use_the_public_url_and_a_trusted_proxy_names_the_client(p1: PingOne):
    at = iso(now())
    body = seed_body("ignored", "t" * 20, at, at)
    del body["user"]
    reply = await p1.create(body, headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3"})
    assert reply.status == 201, reply.body
    assert reply.body["_links"]["environment"]["href"] == (
        f"https://sso.example.com/v1/environments/{p1.env_id}"
    )
    assert reply.body["locations"][0]["remoteIp"] == "10.1.2.3"  # the last untrusted hop


async def test_an_untrusted_peer_cannot_forge_its_address(p1: PingOne):
    at = iso(now())
    body = seed_body("ignored", "t" * 20, at, at)
    del body["user"]
    reply = await p1.create(body, headers={"X-Forwarded-For": "203.0.113.9"})
    assert reply.body["locations"][0]["remoteIp"] == "127.0.0.1"


# -- one session, two facades -----------------------------------------------------------------
async def test_a_pingone_session_is_a_zitadel_session(p1: PingOne, api: Api):
    user = await api.human()
    created, _ = await p1.signed_on(user)
    session_id = created["id"]
    zitadel = await api.get(session_id)
    assert zitadel.status == 200, zitadel.body
    session = zitadel.body["session"]
    assert session["factors"]["user"]["id"] == user
    assert parse(session["expirationDate"]) == parse(created["expiresAt"])
    assert session["userAgent"] == {"ip": "174.1.62.19"}  # the sign-on's address
    listed = await api.search({"queries": [{"userIdQuery": {"id": user}}]})
    assert [s["id"] for s in listed.body["sessions"]] == [session_id]
    assert (await api.delete(session_id)).status == 200
    assert (await p1.call("GET", f"/sessions/{session_id}")).status == 404


async def test_a_zitadel_session_with_a_lifetime_reads_through_pingone(p1: PingOne, api: Api):
    user = await api.human()
    created = await api.create({"checks": {"user": {"userId": user}}, "lifetime": "600s"})
    session_id = created.body["sessionId"]
    reply = await p1.call("GET", f"/sessions/{session_id}")
    assert reply.status == 200, reply.body
    body = reply.body
    assert body["user"] == {"id": user}
    assert body["idleTimeoutInMinutes"] is None
    assert body["lastSignOn"] is None
    expires = parse(body["expiresAt"]) - parse(body["createdAt"])
    assert dt.timedelta(seconds=599) < expires <= dt.timedelta(seconds=600)
    listed = await p1.call("GET", f"/users/{user}/sessions")
    assert [s["id"] for s in listed.body["_embedded"]["sessions"]] == [session_id]
    assert (await p1.call("DELETE", f"/users/{user}/sessions/{session_id}")).status == 204
    assert (await api.get(session_id)).status == 404


# -- expiry and activity ----------------------------------------------------------------------
@pytest.mark.settings(activity_granularity="10s")
async def test_an_idle_session_expires_and_activity_keeps_it(
    clock: DrivenClock, p1: PingOne, api: Api
):
    user = await api.human()
    created, token = await p1.signed_on(user, idleTimeoutInMinutes=1)
    session_id = created["id"]
    clock.advance(50_000)
    again = await p1.call("GET", "/sessions/me", st=token)  # activity, past the granularity
    assert again.status == 200
    assert parse(again.body["activeAt"]) > parse(created["activeAt"])
    assert parse(again.body["expiresAt"]) > parse(created["expiresAt"])
    clock.advance(50_000)  # 100 s after creation, 50 s after the read: still alive
    assert (await p1.call("GET", f"/sessions/{session_id}")).status == 200
    clock.advance(11_000)
    assert (await p1.call("GET", f"/sessions/{session_id}")).status == 404
    assert (await p1.call("GET", "/sessions/me", st=token)).status == 404
    assert (await api.get(session_id)).body["session"]["id"] == session_id  # retained, expired


async def test_reads_within_the_granularity_write_nothing(p1: PingOne, api: Api, redis):
    user = await api.human()
    created, token = await p1.signed_on(user)
    before = await session_history(redis, created["id"])
    assert before  # the history this test watches is where the events are
    for _ in range(5):
        assert (await p1.call("GET", "/sessions/me", st=token)).status == 200
    assert await session_history(redis, created["id"]) == before


async def test_the_earlier_of_idle_timeout_and_lifetime_wins(p1: PingOne, api: Api):
    user = await api.human()
    created, _token = await p1.signed_on(user, idleTimeoutInMinutes=60)
    session_id = created["id"]
    assert (await api.set(session_id, {"lifetime": "120s"})).status == 200
    body = (await p1.call("GET", f"/sessions/{session_id}")).body
    ends_in = parse(body["expiresAt"]) - now()
    assert dt.timedelta(seconds=115) < ends_in <= dt.timedelta(seconds=120)
    zitadel = (await api.get(session_id)).body["session"]
    assert parse(zitadel["expirationDate"]) == parse(body["expiresAt"])


# -- the ST token -----------------------------------------------------------------------------
async def test_put_replaces_the_token_and_the_old_one_stops_working(p1: PingOne, api: Api):
    user = await api.human()
    created, old = await p1.signed_on(user)
    new = secrets.token_urlsafe(24)
    at = iso(now())
    update = {**seed_body(user, new, at, at), "idleTimeoutInMinutes": "72000"}
    update["userAgent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    update["lastSignOn"]["remoteIp"] = "198.51.100.7"
    reply = await p1.call("PUT", "/sessions/me", update, st=old)
    assert reply.status == 200, reply.body
    assert reply.body["id"] == created["id"]
    assert reply.body["idleTimeoutInMinutes"] == 72000
    assert reply.body["operatingSystem"]["name"] == "Linux"
    assert [loc["remoteIp"] for loc in reply.body["locations"]] == ["198.51.100.7", "174.1.62.19"]
    assert (await p1.call("GET", "/sessions/me", st=old)).status == 404
    assert (await p1.call("PUT", "/sessions/me", update, st=old)).status == 404
    assert (await p1.call("GET", "/sessions/me", st=new)).body["id"] == created["id"]


async def test_only_the_last_five_locations_are_kept_newest_first(p1: PingOne, api: Api):
    user = await api.human()
    _, token = await p1.signed_on(user)
    for n in range(1, 8):
        at = iso(now())
        body = seed_body(user, token, at, at)
        body["lastSignOn"]["remoteIp"] = f"192.0.2.{n}"
        assert (await p1.call("PUT", "/sessions/me", body, st=token)).status == 200
    reply = await p1.call("GET", "/sessions/me", st=token)
    assert [loc["remoteIp"] for loc in reply.body["locations"]] == [
        f"192.0.2.{n}" for n in (7, 6, 5, 4, 3)
    ]


async def test_a_session_created_without_a_token_is_not_reachable_by_one(p1: PingOne, api: Api):
    user = await api.human()
    created, _ = await p1.signed_on(user, token=None)
    assert (await p1.call("GET", "/sessions/me", st="x" * 20)).status == 404
    assert (await p1.call("GET", f"/sessions/{created['id']}")).status == 200


async def test_a_token_in_use_by_another_session_is_refused(p1: PingOne, api: Api):
    user = await api.human()
    _, token = await p1.signed_on(user)
    at = iso(now())
    reply = await p1.create(seed_body(user, token, at, at))
    assert reply.status == 400, reply.body
    assert reply.body["details"][0]["code"] == "UNIQUENESS_VIOLATION"


async def test_logout_clears_every_factor_but_the_user(p1: PingOne, api: Api):
    user = await api.human()
    created, token = await p1.signed_on(user)
    session_id = created["id"]
    checked = await api.set(session_id, {"checks": {"password": {"password": "Corr3ct-Horse!"}}})
    assert checked.status == 200, checked.body
    factors = (await api.get(session_id)).body["session"]["factors"]
    assert set(factors) == {"user", "password"}
    reply = await p1.call("POST", "/sessions/me", st=token, headers={"Content-Type": LOGOUT})
    assert reply.status == 204, reply.body
    factors = (await api.get(session_id)).body["session"]["factors"]
    assert set(factors) == {"user"}
    wrong = await p1.call("POST", "/sessions/me", {}, st=token)
    assert wrong.status == 415
    assert wrong.body["code"] == "INVALID_REQUEST"


async def test_delete_me_ends_the_cookies_session(p1: PingOne, api: Api):
    user = await api.human()
    created, token = await p1.signed_on(user)
    assert (await p1.call("DELETE", "/sessions/me", st=token)).status == 204
    assert (await p1.call("GET", "/sessions/me", st=token)).status == 404
    assert (await api.get(created["id"])).status == 404


# -- a user's sessions ------------------------------------------------------------------------
async def test_a_users_sessions_newest_first_and_sign_out_everywhere_else(p1: PingOne, api: Api):
    user, other = await api.human(), await api.human()
    ids = [(await p1.signed_on(user))[0]["id"] for _ in range(4)]
    theirs = (await p1.signed_on(other))[0]["id"]
    listed = await p1.call("GET", f"/users/{user}/sessions")
    assert listed.status == 200, listed.body
    assert [s["id"] for s in listed.body["_embedded"]["sessions"]] == ids[::-1]
    assert listed.body["count"] == listed.body["size"] == 4
    env = f"http://{p1.client.host}:{p1.client.port}/v1/environments/{p1.env_id}"
    assert listed.body["_links"] == {"self": {"href": f"{env}/users/{user}/sessions"}}
    one = await p1.call("GET", f"/users/{user}/sessions/{ids[0]}")
    assert one.status == 200
    assert one.body["id"] == ids[0]
    assert (await p1.call("GET", f"/users/{other}/sessions/{ids[0]}")).status == 404
    keep = ids[2]
    signed_out = await p1.call("DELETE", f"/users/{user}/sessions?except={keep}")
    assert signed_out.status == 204
    left = await p1.call("GET", f"/users/{user}/sessions")
    assert [s["id"] for s in left.body["_embedded"]["sessions"]] == [keep]
    assert (await p1.call("GET", f"/sessions/{theirs}")).status == 200
    assert (await p1.call("DELETE", f"/users/{user}/sessions")).status == 204
    assert (await p1.call("GET", f"/users/{user}/sessions")).body["count"] == 0


@pytest.mark.settings(max_sessions_per_user=3)
async def test_the_listing_holds_at_most_the_cap(p1: PingOne, api: Api):
    user = await api.human()
    ids = [(await p1.signed_on(user))[0]["id"] for _ in range(5)]
    listed = await p1.call("GET", f"/users/{user}/sessions")
    assert [s["id"] for s in listed.body["_embedded"]["sessions"]] == ids[:1:-1]


# -- authorization ----------------------------------------------------------------------------
async def test_the_bearers_permissions_apply(p1: PingOne, api: Api):
    user = await api.human()
    created, _token = await p1.signed_on(user)
    _, reader = await api.machine_with_pat(["IAM_OWNER_VIEWER"])
    assert (await p1.call("GET", f"/sessions/{created['id']}", token=reader)).status == 200
    refused = await p1.create(seed_body(user, "y" * 20, iso(now()), iso(now())), token=reader)
    assert refused.status == 403
    assert refused.body["code"] == "ACCESS_FAILED"
    nobody = await p1.call("GET", f"/sessions/{created['id']}", token=None)
    assert nobody.status == 401
    assert nobody.body["code"] == "ACCESS_FAILED"
    assert set(nobody.body) >= {"id", "code", "message"}


# -- bad input --------------------------------------------------------------------------------
def _valid(user_id: str = "ignored") -> dict[str, Any]:
    at = iso(now())
    return seed_body(user_id, secrets.token_urlsafe(24), at, at)


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"activeAt": 5}, "activeAt"),
        ({"activeAt": "yesterday"}, "activeAt"),
        ({"activeAt": "2022-13-40T25:61:00Z"}, "activeAt"),
        ({"idleTimeoutInMinutes": -5}, "idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": 0}, "idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": "ten"}, "idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": "-1"}, "idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": 10**12}, "idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": 1.5}, "idleTimeoutInMinutes"),
        ({"idleTimeoutInMinutes": True}, "idleTimeoutInMinutes"),
        ({"userAgent": "x" * 10_000}, "userAgent"),
        ({"userAgent": 7}, "userAgent"),
        ({"userAgent": ""}, "userAgent"),
        ({"token": "short"}, "token"),
        ({"token": ["list"]}, "token"),
        ({"user": {"id": 5}}, "user.id"),
        ({"user": "me"}, "user"),
        ({"lastSignOn": {"remoteIp": "not-an-ip"}}, "lastSignOn.remoteIp"),
        ({"lastSignOn": "pwd"}, "lastSignOn"),
        ({"lastSignOn": {"authenticators": ["pwd"]}}, "lastSignOn.remoteIp"),
        (
            {
                "lastSignOn": {
                    "remoteIp": "192.0.2.1",
                    "withAuthenticator": {
                        "pwd": {"at": "soon", "policy": {"id": "p", "type": "t"}}
                    },
                }
            },
            "lastSignOn.withAuthenticator.pwd.at",
        ),
    ],
)
async def test_bad_fields_are_400_with_their_target_and_nothing_is_written(
    p1: PingOne, api: Api, redis, change: dict[str, Any], target: str
):
    user = await api.human()
    before = await redis.dbsize()
    reply = await p1.create({**_valid(user), **change})
    assert reply.status == 400, reply.body
    assert reply.body["code"] == "INVALID_DATA"
    assert reply.body["details"][0]["target"] == target, reply.body
    assert set(reply.body) == {"id", "code", "message", "details"}
    assert await redis.dbsize() == before


async def test_an_active_at_far_in_the_future_is_refused(p1: PingOne, api: Api):
    user = await api.human()
    body = {**_valid(user), "activeAt": iso(now() + dt.timedelta(hours=1))}
    reply = await p1.create(body)
    assert reply.status == 400
    assert reply.body["code"] == "INVALID_DATA"


@pytest.mark.parametrize("missing", ["activeAt", "userAgent"])
async def test_a_required_field_missing_is_named(p1: PingOne, missing: str):
    body = _valid()
    del body[missing]
    reply = await p1.create(body)
    assert reply.status == 400
    assert reply.body["details"][0] == {
        "code": "REQUIRED_VALUE",
        "target": missing,
        "message": f"Object missing required field `{missing}`",
    }


@pytest.mark.parametrize("raw", [b"[]", b"not json", b'{"activeAt": ', b'"text"', b"   "])
async def test_a_body_that_is_not_an_object_is_refused(p1: PingOne, raw: bytes):
    reply = await p1.call(
        "POST", "/sessions", data=raw, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400
    assert reply.body["code"] == "INVALID_DATA"


async def test_an_unknown_user_is_invalid_data(p1: PingOne):
    reply = await p1.create(_valid("no-such-user"))
    assert reply.status == 400
    assert reply.body["details"][0]["target"] == "user.id"


async def test_an_unknown_environment_is_404_in_pingones_shape(p1: PingOne, api: Api):
    other = PingOne(p1.client, "abfba8f6-49eb-49f5-a5d9-80ad5c98f9f6")
    reply = await other.create(_valid())
    assert reply.status == 404
    assert reply.body["code"] == "NOT_FOUND"
    assert (await other.call("GET", "/sessions/anything")).body["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("cookie", "status"),
    [
        (None, 400),  # no cookie: the request is incomplete
        ("other=value", 400),
        ("ST=", 404),  # a value that cannot be a token names no session
        ("ST=short", 404),
        ("ST=" + "z" * 600, 404),
        ('ST="a b c"; ST', 404),
        ("ST=" + "y" * 24, 404),  # well-formed, but no session holds it
    ],
)
async def test_a_missing_or_malformed_st_cookie_is_refused(
    p1: PingOne, cookie: str | None, status: int
):
    headers = {"Cookie": cookie} if cookie is not None else {}
    reply = await p1.call("GET", "/sessions/me", headers=headers)
    assert reply.status == status, reply.body
    if status == 400:
        assert reply.body["code"] == "INVALID_DATA"
        assert reply.body["details"][0]["target"] == "Cookie.ST"
    else:
        assert reply.body["code"] == "NOT_FOUND"


async def test_routing_errors_keep_pingones_shape(p1: PingOne):
    wrong_method = await p1.call("PATCH", "/sessions/me")
    assert wrong_method.status == 405
    assert wrong_method.body["code"] == "INVALID_REQUEST"
    unknown = await p1.call("GET", "/nothing-here")
    assert unknown.status == 404
    assert unknown.body["code"] == "NOT_FOUND"


async def test_metadata_written_by_zitadel_survives_a_pingone_update(p1: PingOne, api: Api):
    user = await api.human()
    created, token = await p1.signed_on(user)
    assert (await api.set(created["id"], {"metadata": {"k": b64("v")}})).status == 200
    assert (
        await p1.call("PUT", "/sessions/me", _valid(user) | {"token": token}, st=token)
    ).status == 200
    session = (await api.get(created["id"])).body["session"]
    assert session["metadata"] == {"k": b64("v")}


async def test_sign_out_everywhere_races_creates_without_losing_or_half_ending(
    p1: PingOne, api: Api, redis
):
    user = await api.human()
    before = [(await p1.signed_on(user))[0]["id"] for _ in range(6)]
    keep = before[0]

    async def create() -> str:
        return str((await p1.signed_on(user))[0]["id"])

    signed_out, *during = await asyncio.gather(
        p1.call("DELETE", f"/users/{user}/sessions?except={keep}"),
        *(create() for _ in range(12)),
    )
    assert isinstance(signed_out, Reply)
    assert signed_out.status == 204
    for session_id in before[1:]:  # every session that existed before the call is ended
        assert (await p1.call("GET", f"/sessions/{session_id}")).status == 404
    live = {
        session_id
        for session_id in [keep, *during]
        if (await p1.call("GET", f"/sessions/{session_id}")).status == 200
    }
    assert keep in live
    indexed = {m.decode() for m in await redis.zrange(keys.sessions_of_user(user), 0, -1)}
    listed = await p1.call("GET", f"/users/{user}/sessions")
    assert {s["id"] for s in listed.body["_embedded"]["sessions"]} == live == indexed
