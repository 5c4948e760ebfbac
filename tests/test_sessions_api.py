"""Session API end to end over real HTTP and a real server (spec §16: 1-6, 9, 24-30, 33-57).

Test names carry the checklist number they cover (``test_16_1_...``). The suite runs with the
per-worker caches off (``cache_ttl_ms=0``), so changes are visible at once. Lifetimes and
retention are tested on the app's clock moved forward (``tests.driven``), not by sleeping: a
lifetime is then never shorter than a slow machine's first request.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient

from storage import index_plan, keys
from storage.multiplex import MultiplexedRedis
from storage.sessions import RedisSessionStore
from tests.driven import DrivenClock, drive_app_clock
from tests.support import ADMIN_TOKEN, PASSWORD, Api, b64, session_history


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _at(clock: DrivenClock) -> dt.datetime:
    return dt.datetime.fromtimestamp(clock.now_ms() / 1000, dt.UTC)


@pytest.fixture(name="clock")
def _clock(monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    return drive_app_clock(monkeypatch)


@pytest.fixture(name="client")
async def _client_on_a_driven_clock(
    clock: DrivenClock, client: TestClient[web.Request, web.Application]
) -> TestClient[web.Request, web.Application]:
    """The app of ``tests.apifixtures``, created after ``clock`` became its clock."""
    return client


@pytest.fixture(name="login_client")
async def _login_client(api: Api) -> tuple[str, str]:
    return await api.machine_with_pat(["IAM_LOGIN_CLIENT"])


class TestCreate:
    async def test_16_1_metadata_only_session(self, api: Api, instance_id: str):
        reply = await api.create({"metadata": {"foo": b64("bar")}})
        assert reply.status == 201
        details = reply.body["details"]
        assert details["resourceOwner"] == instance_id
        assert details["sequence"] != "0"
        assert abs((_ts(details["changeDate"]) - _now()).total_seconds()) < 60
        assert reply.body["sessionToken"].startswith("s.")

    async def test_16_2_full_create(self, api: Api):
        user = await api.human()
        reply = await api.create(
            {
                "checks": {"user": {"userId": user}},
                "metadata": {"foo": b64("bar")},
                "userAgent": {
                    "fingerprintId": "fp",
                    "ip": "1.2.3.4",
                    "description": "desc",
                    "header": {"foo": {"values": ["foo", "bar"]}},
                },
                "lifetime": "300s",
            }
        )
        assert reply.status == 201, reply.body

    async def test_16_3_negative_lifetime_fails(self, api: Api):
        reply = await api.create({"lifetime": "-300s"})
        assert (reply.status, reply.body["code"]) == (400, 3)

    @pytest.mark.parametrize("action", ["deactivate", "lock"])
    async def test_16_4_5_inactive_or_locked_user_fails(self, api: Api, action: str):
        user = await api.human()
        assert (await api.call("POST", f"/v2/users/{user}/{action}", body={})).status == 200
        reply = await api.create({"checks": {"user": {"userId": user}}})
        assert (reply.status, reply.body["code"], reply.error_id) == (400, 9, "SESSION-Gj4ko")

    async def test_16_6_password_without_user_fails(self, api: Api):
        reply = await api.create({"checks": {"password": {"password": PASSWORD}}})
        assert reply.status == 400
        assert reply.error_id == "COMMAND-Sfw3f"

    async def test_unknown_user_is_404(self, api: Api):
        reply = await api.create({"checks": {"user": {"userId": "nope"}}})
        assert (reply.status, reply.error_id) == (404, "QUERY-Dfbg2")

    async def test_login_name_is_case_insensitive(self, api: Api):
        user = await api.human("MixedCase")
        reply = await api.create({"checks": {"user": {"loginName": "mixedcase"}}})
        assert reply.status == 201
        got = await api.get(reply.body["sessionId"])
        assert got.body["session"]["factors"]["user"]["id"] == user

    async def test_an_intent_check_without_a_user_is_refused_before_the_token(self, api: Api):
        check = {"idpIntentId": "1", "idpIntentToken": "t"}
        reply = await api.create({"checks": {"idpIntent": check}})
        assert (reply.status, reply.error_id) == (400, "COMMAND-Sfw3r")


class TestLockout:
    @pytest.mark.settings(lockout_max_password_attempts=2)
    async def test_16_9_third_wrong_password_hits_the_lock(self, api: Api):
        user = await api.human()
        body = {"checks": {"user": {"userId": user}, "password": {"password": "wrong"}}}
        codes = [(r.status, r.body["code"]) for r in [await api.create(body) for _ in range(3)]]
        assert codes == [(400, 3), (400, 3), (400, 9)]

    async def test_wrong_password_reports_failed_attempts(self, api: Api):
        user = await api.human()
        body = {"checks": {"user": {"userId": user}, "password": {"password": "wrong"}}}
        first, second = await api.create(body), await api.create(body)
        assert first.error_id == "COMMAND-3M0fs"
        assert [
            first.body["details"][0]["failedAttempts"],
            second.body["details"][0]["failedAttempts"],
        ] == [1, 2]
        assert first.body["details"][0]["@type"].endswith("CredentialsCheckError")


class TestSetAndTimes:
    async def test_16_24_sequence_and_dates_follow_the_writes(self, api: Api):
        user = await api.human()
        created = await api.create({"checks": {"user": {"userId": user}}})
        sid, token = created.body["sessionId"], created.body["sessionToken"]
        got = (await api.get(sid, sessionToken=token)).body["session"]
        assert got["sequence"] == created.body["details"]["sequence"]
        assert got["creationDate"] == created.body["details"]["changeDate"]
        updated = await api.set(sid, {"checks": {"password": {"password": PASSWORD}}})
        assert updated.status == 200, updated.body
        token = updated.body["sessionToken"]
        got = (await api.get(sid, sessionToken=token)).body["session"]
        assert got["sequence"] == updated.body["details"]["sequence"]
        assert got["changeDate"] == updated.body["details"]["changeDate"]
        verified = _ts(got["factors"]["password"]["verifiedAt"])
        low = _ts(got["creationDate"]) - dt.timedelta(milliseconds=250)
        high = _ts(got["changeDate"]) + dt.timedelta(milliseconds=250)
        assert low <= verified <= high

    async def test_the_previous_token_stops_working_after_a_write(self, api: Api):
        created = await api.create({})
        sid, old = created.body["sessionId"], created.body["sessionToken"]
        new = (await api.set(sid, {"metadata": {"k": b64("v")}})).body["sessionToken"]
        assert (await api.get(sid, sessionToken=old)).status == 403
        assert (await api.get(sid, sessionToken=new)).status == 200

    async def test_a_noop_set_returns_no_token_and_keeps_the_old_one(self, api: Api):
        created = await api.create({"metadata": {"k": b64("v")}})
        sid, token = created.body["sessionId"], created.body["sessionToken"]
        noop = await api.set(sid, {"metadata": {"k": b64("v")}})
        assert noop.status == 200
        assert "sessionToken" not in noop.body
        assert noop.body["details"]["sequence"] == created.body["details"]["sequence"]
        assert (await api.get(sid, sessionToken=token)).status == 200

    async def test_set_on_unknown_session_is_404(self, api: Api):
        reply = await api.set("123", {"metadata": {"k": b64("v")}})
        assert (reply.status, reply.body["code"], reply.error_id) == (404, 5, "COMMAND-Flk38")

    async def test_set_on_a_terminated_session_fails(self, api: Api):
        created = await api.create({"metadata": {"k": b64("v")}})
        sid = created.body["sessionId"]
        assert (await api.delete(sid)).status == 200
        reply = await api.set(sid, {"metadata": {"k": b64("changed")}})
        assert (reply.status, reply.body["code"], reply.error_id) == (400, 9, "COMMAND-Hewfq")

    async def test_user_change_is_not_possible(self, api: Api):
        first, second = await api.human(), await api.human()
        sid = (await api.create({"checks": {"user": {"userId": first}}})).body["sessionId"]
        reply = await api.set(sid, {"checks": {"user": {"userId": second}}})
        assert (reply.status, reply.body["message"]) == (400, "user change not possible")

    async def test_16_25_expired_session_cannot_be_set(self, api: Api, clock: DrivenClock):
        sid = (await api.create({"lifetime": "60s"})).body["sessionId"]
        assert (await api.set(sid, {"lifetime": "60s"})).status == 200
        clock.advance(61_000)
        reply = await api.set(sid, {"metadata": {"k": b64("v")}})
        assert (reply.status, reply.error_id) == (400, "COMMAND-Hkl3d")


class TestDelete:
    async def test_16_26_wrong_token_fails_right_token_works(self, api: Api):
        created = await api.create({})
        sid = created.body["sessionId"]
        bad = await api.delete(sid, body={"sessionToken": "invalid"})
        assert (bad.status, bad.error_id) == (403, "COMMAND-sGr42")
        good = await api.delete(sid, body={"sessionToken": created.body["sessionToken"]})
        assert good.status == 200
        gone = await api.get(sid)
        assert (gone.status, gone.error_id) == (404, "QUERY-SFeaa")

    async def test_16_27_own_session_as_bearer_may_delete_another_users_may_not(self, api: Api):
        alice, bob = await api.human(), await api.human()
        alice_session = await api.session_for(alice)
        bob_session = await api.session_for(bob)
        target = (await api.create({"checks": {"user": {"userId": alice}}})).body["sessionId"]
        assert (await api.delete(target, bob_session.body["sessionToken"])).status == 403
        assert (await api.delete(target, alice_session.body["sessionToken"])).status == 200

    async def test_16_28_org_owner_of_the_users_org_may_delete(self, api: Api):
        org = await api.org()
        user = await api.human(org_id=org)
        owner_id, owner_token = await api.machine_with_pat([], org_id=org)
        sid = (await api.create({"checks": {"user": {"userId": user}}})).body["sessionId"]
        assert (await api.delete(sid, owner_token)).status == 403
        await api.grant(owner_id, ["ORG_OWNER"], org)
        assert (await api.delete(sid, owner_token)).status == 200

    async def test_16_29_expired_session_can_be_deleted_with_its_token(
        self, api: Api, clock: DrivenClock
    ):
        created = await api.create({"lifetime": "60s"})
        sid = created.body["sessionId"]
        clock.advance(61_000)
        expired = await api.set(sid, {"metadata": {"k": b64("v")}})
        assert expired.error_id == "COMMAND-Hkl3d"  # it really is expired now
        deleted = await api.delete(sid, body={"sessionToken": created.body["sessionToken"]})
        assert deleted.status == 200, deleted.body
        gone = await api.get(sid)
        assert (gone.status, gone.error_id) == (404, "QUERY-SFeaa")

    async def test_deleting_twice_is_idempotent(self, api: Api, redis):
        created = await api.create({})
        sid = created.body["sessionId"]
        first = await api.delete(sid)
        second = await api.delete(sid)
        assert (first.status, second.status) == (200, 200)
        sequence = int(created.body["details"]["sequence"]) + 1  # one event: the termination
        assert int(first.body["details"]["sequence"]) == sequence
        assert second.body["details"] == first.body["details"]  # nothing written again
        events = [fields[b"type"] for fields in await session_history(redis, sid)]
        assert events == [b"session.added", b"session.token.set", b"session.terminated"]


class TestBearer:
    async def test_16_30_empty_session_token_is_not_a_bearer(self, api: Api):
        token = (await api.create({})).body["sessionToken"]
        sid = (await api.create({})).body["sessionId"]
        assert (await api.get(sid, token)).status == 401

    async def test_user_only_session_is_not_a_bearer(self, api: Api):
        user = await api.human()
        token = (await api.create({"checks": {"user": {"userId": user}}})).body["sessionToken"]
        assert (await api.search({}, token)).status == 401

    async def test_16_33_deleted_session_token_is_rejected(self, api: Api):
        user = await api.human()
        session = await api.session_for(user)
        token = session.body["sessionToken"]
        assert (await api.search({}, token)).status == 200
        assert (await api.delete(session.body["sessionId"], token)).status == 200
        assert (await api.search({}, token)).status == 401

    async def test_16_34_token_stops_working_after_expiry(self, api: Api, clock: DrivenClock):
        user = await api.human()
        token = (await api.session_for(user, lifetime="60s")).body["sessionToken"]
        assert (await api.search({}, token)).status == 200
        clock.advance(61_000)
        refused = await api.search({}, token)
        assert (refused.status, refused.error_id) == (401, "AUTH-7fs1e")

    async def test_deactivated_user_session_stops_authenticating(self, api: Api):
        user = await api.human()
        token = (await api.session_for(user)).body["sessionToken"]
        assert (await api.call("POST", f"/v2/users/{user}/deactivate", body={})).status == 200
        refused = await api.search({}, token)
        assert (refused.status, refused.error_id) == (401, "AUTH-7fs1e")

    async def test_a_password_checked_before_a_password_change_no_longer_authenticates(
        self, api: Api
    ):
        user = await api.human()
        token = (await api.session_for(user)).body["sessionToken"]
        assert (await api.search({}, token)).status == 200
        changed = await api.call(
            "POST",
            f"/v2/users/{user}/password",
            body={"newPassword": {"password": "An0ther-Passw0rd!"}},
        )
        assert changed.status == 200, changed.body
        refused = await api.search({}, token)
        assert (refused.status, refused.error_id) == (401, "AUTH-7fs1e")
        # the user is fine: a session checked with the new password is a bearer again
        renewed = await api.create(
            {"checks": {"user": {"userId": user}, "password": {"password": "An0ther-Passw0rd!"}}}
        )
        assert renewed.status == 201, renewed.body
        assert (await api.search({}, renewed.body["sessionToken"])).status == 200

    async def test_password_change_clears_the_password_factor(self, api: Api):
        user = await api.human()
        sid = (await api.session_for(user)).body["sessionId"]
        reply = await api.call(
            "POST",
            f"/v2/users/{user}/password",
            body={"newPassword": {"password": "An0ther-Passw0rd!"}},
        )
        assert reply.status == 200, reply.body
        factors = (await api.get(sid)).body["session"]["factors"]
        assert "password" not in factors
        assert factors["user"]["id"] == user


class TestGet:
    async def test_16_35_36_empty_or_unknown_id(self, api: Api):
        empty = await api.get("")  # GET /v2/sessions/: no such route
        assert (empty.status, empty.body) == (
            404,
            {"code": 5, "message": "Not Found", "details": []},
        )
        reply = await api.get("unknown")
        assert (reply.status, reply.error_id) == (404, "QUERY-SFeaa")

    async def test_16_37_38_39_who_may_read(self, api: Api, login_client):
        _, client_token = login_client
        created = await api.create({}, client_token)
        sid, token = created.body["sessionId"], created.body["sessionToken"]
        stranger = await api.human()
        stranger_token = (await api.session_for(stranger)).body["sessionToken"]
        assert (await api.get(sid, stranger_token)).status == 403
        assert (await api.get(sid, ADMIN_TOKEN)).status == 200
        assert (await api.get(sid, stranger_token, sessionToken=token)).status == 200
        assert (await api.get(sid, client_token)).status == 200  # the creator

    async def test_16_40_41_42_43_fields_round_trip(self, api: Api):
        user = await api.human()
        created = await api.create(
            {
                "checks": {"user": {"userId": user}},
                "metadata": {"foo": b64("bar")},
                "userAgent": {
                    "fingerprintId": "fp",
                    "ip": "::ffff:0:1.2.3.4",
                    "description": "desc",
                    "header": {"foo": {"values": ["foo", "bar"]}},
                },
                "lifetime": "300s",
            }
        )
        session = (await api.get(created.body["sessionId"])).body["session"]
        assert session["userAgent"] == {
            "fingerprintId": "fp",
            "ip": "::ffff:0:102:304",
            "description": "desc",
            "header": {"foo": {"values": ["foo", "bar"]}},
        }
        assert session["metadata"] == {"foo": b64("bar")}
        assert session["factors"]["user"]["id"] == user
        expires = _ts(session["expirationDate"]) - _now()
        assert dt.timedelta(minutes=4) < expires <= dt.timedelta(minutes=5)
        plain = (await api.get((await api.create({})).body["sessionId"])).body["session"]
        assert "expirationDate" not in plain
        assert "factors" not in plain


class TestList:
    async def test_16_44_unknown_id(self, api: Api):
        reply = await api.search({"queries": [{"idsQuery": {"ids": ["unknown"]}}]})
        assert reply.status == 200
        assert "sessions" not in reply.body
        assert "totalResult" not in reply.body["details"]

    async def test_16_45_46_visibility_and_count(self, api: Api, login_client):
        _, client_token = login_client
        sid = (await api.create({}, client_token)).body["sessionId"]
        stranger = await api.human()
        stranger_token = (await api.session_for(stranger)).body["sessionToken"]
        query = {"queries": [{"idsQuery": {"ids": [sid]}}]}
        hidden = await api.search(query, stranger_token)
        assert "sessions" not in hidden.body  # and, unlike ZITADEL, not counted either
        assert "totalResult" not in hidden.body["details"]
        shown = await api.search(query)
        assert [s["id"] for s in shown.body["sessions"]] == [sid]
        assert shown.body["details"]["totalResult"] == "1"

    async def test_16_47_48_full_sessions_by_ids(self, api: Api):
        user = await api.human()
        ids = [
            (
                await api.create(
                    {
                        "checks": {"user": {"userId": user}},
                        "metadata": {"k": b64("v")},
                        "userAgent": {"description": "agent"},
                        "lifetime": "300s",
                    }
                )
            ).body["sessionId"]
            for _ in range(3)
        ]
        reply = await api.search({"queries": [{"idsQuery": {"ids": ids}}]})
        assert reply.body["details"]["totalResult"] == "3"
        for session in reply.body["sessions"]:
            assert {
                "id",
                "creationDate",
                "changeDate",
                "sequence",
                "factors",
                "metadata",
                "userAgent",
                "expirationDate",
            } <= set(session)

    async def test_16_49_user_id_query(self, api: Api):
        user = await api.human()
        sid = (await api.create({"checks": {"user": {"userId": user}}})).body["sessionId"]
        await api.create({})
        reply = await api.search({"queries": [{"userIdQuery": {"id": user}}]})
        assert [s["id"] for s in reply.body["sessions"]] == [sid]

    async def test_16_50_51_52_53_creator_query(self, api: Api, login_client):
        client_id, client_token = login_client
        sid = (await api.create({}, client_token)).body["sessionId"]
        ids = {"idsQuery": {"ids": [sid]}}
        mine = await api.search({"queries": [ids, {"creatorQuery": {}}]}, client_token)
        assert [s["id"] for s in mine.body["sessions"]] == [sid]
        by_id = await api.search({"queries": [{"creatorQuery": {"id": client_id}}]})
        assert [s["id"] for s in by_id.body["sessions"]] == [sid]
        admins = await api.search({"queries": [ids, {"creatorQuery": {}}]})
        assert "sessions" not in admins.body
        empty = await api.search({"queries": [{"creatorQuery": {"id": ""}}]})
        assert empty.status == 400

    async def test_16_54_user_agent_query(self, api: Api):
        sid = (await api.create({"userAgent": {"fingerprintId": "useragent"}})).body["sessionId"]
        found = await api.search({"queries": [{"userAgentQuery": {"fingerprintId": "useragent"}}]})
        assert [s["id"] for s in found.body["sessions"]] == [sid]
        wrong = await api.search(
            {"queries": [{"userAgentQuery": {"fingerprintId": "wronguseragent"}}]}
        )
        assert "sessions" not in wrong.body
        empty = await api.search({"queries": [{"userAgentQuery": {"fingerprintId": ""}}]})
        assert empty.status == 400

    async def test_16_55_56_expiration_queries(self, api: Api, clock: DrivenClock):
        expiring = (await api.create({"lifetime": "300s"})).body["sessionId"]
        forever = (await api.create({})).body["sessionId"]
        gone = (await api.create({"lifetime": "60s"})).body["sessionId"]
        clock.advance(61_000)
        now = _iso(_at(clock))
        ids = {"idsQuery": {"ids": [expiring, forever, gone]}}

        async def found(method: str) -> set[str]:
            query = {"expirationDateQuery": {"expirationDate": now, "method": method}}
            reply = await api.search({"queries": [ids, query]})
            return {s["id"] for s in reply.body.get("sessions", [])}

        assert await found("TIMESTAMP_QUERY_METHOD_GREATER_OR_EQUALS") == {expiring, forever}
        assert await found("TIMESTAMP_QUERY_METHOD_LESS_OR_EQUALS") == {gone}

    async def test_16_57_limit_over_1000_is_invalid(self, api: Api):
        reply = await api.search({"query": {"limit": 1001}})
        assert (reply.status, reply.body["code"], reply.error_id) == (400, 3, "QUERY-4M0fs")

    async def test_paging_and_sorting_by_creation_date(self, api: Api):
        user = await api.human()
        ids = []
        for _ in range(5):  # distinct milliseconds: equal creation dates have no defined order
            ids.append((await api.create({"checks": {"user": {"userId": user}}})).body["sessionId"])
            await asyncio.sleep(0.003)
        query = {
            "queries": [{"userIdQuery": {"id": user}}],
            "sortingColumn": "SESSION_FIELD_NAME_CREATION_DATE",
            "query": {"offset": "1", "limit": 2, "asc": True},
        }
        reply = await api.search(query)
        assert reply.body["details"]["totalResult"] == "5"
        assert [s["id"] for s in reply.body["sessions"]] == ids[1:3]

    async def test_a_plain_user_lists_only_sessions_they_may_see(self, api: Api):
        alice, bob = await api.human(), await api.human()
        alice_token = (await api.session_for(alice)).body["sessionToken"]
        own = (await api.create({"checks": {"user": {"userId": alice}}})).body["sessionId"]
        await api.create({"checks": {"user": {"userId": bob}}})
        await api.create({})
        reply = await api.search({}, alice_token)
        found = {s["id"] for s in reply.body["sessions"]}
        assert own in found
        assert len(found) == 2  # the bearer session itself and ``own``
        assert reply.body["details"]["totalResult"] == "2"

    async def test_an_org_owner_lists_the_sessions_of_their_org(self, api: Api):
        org, other = await api.org(), await api.org()
        member, outsider = await api.human(org_id=org), await api.human(org_id=other)
        owner_id, owner_token = await api.machine_with_pat([], org_id=org)
        await api.grant(owner_id, ["ORG_OWNER"], org)
        inside = (await api.create({"checks": {"user": {"userId": member}}})).body["sessionId"]
        await api.create({"checks": {"user": {"userId": outsider}}})
        reply = await api.search({}, owner_token)
        assert [s["id"] for s in reply.body["sessions"]] == [inside]

    async def test_aliases_serve_the_same_api(self, api: Api):
        for prefix in ("/v2beta", "/v2alpha"):
            reply = await api.call("POST", f"{prefix}/sessions", body={})
            assert reply.status == 201


def _session_store(fast_redis: MultiplexedRedis) -> RedisSessionStore:
    """A reader of what the app stored (the arguments play no part in reads)."""
    return RedisSessionStore(
        fast_redis,
        instance_id="",
        retention_ms=0,
        partitions=16,
        stream_maxlen=1,
        lease_ttl_ms=1000,
    )


async def _indexes_holding(redis: aioredis.Redis, sid: str, indexes: list[str]) -> list[str]:
    return [index for index in indexes if await redis.zscore(index, sid) is not None]


class TestRetention:
    """Expired sessions stay readable for ``SESSIOND_EXPIRED_RETENTION``, then vanish."""

    @pytest.mark.settings(expired_retention="60s", sweep_interval_s=3600)
    async def test_get_shows_an_expired_session_until_its_retention_ends(
        self, api: Api, clock: DrivenClock, redis: aioredis.Redis
    ):
        sid = (await api.create({"lifetime": "10s"})).body["sessionId"]
        clock.advance(10_000 + 30_000)  # expired 30 s ago: half-way through the retention
        retained = await api.get(sid)
        assert retained.status == 200, retained.body
        assert _ts(retained.body["session"]["expirationDate"]) < _at(clock)
        clock.advance(31_000)  # expiration + retention passed 1 s ago
        hidden = await api.get(sid)
        assert (hidden.status, hidden.error_id) == (404, "QUERY-SFeaa")
        # hidden by the rule: the sweeper (hourly here) has not purged it yet
        assert await redis.exists(keys.session(sid)) == 1

    @pytest.mark.settings(expired_retention="60s", sweep_interval_s=0.05)
    async def test_the_sweeper_purges_a_session_past_its_retention_with_its_indexes(
        self,
        api: Api,
        clock: DrivenClock,
        redis: aioredis.Redis,
        fast_redis: MultiplexedRedis,
    ):
        org = await api.org()
        user = await api.human(org_id=org)
        body = {"checks": {"user": {"userId": user}}, "userAgent": {"fingerprintId": "fp-sweep"}}
        sid = (await api.create({**body, "lifetime": "10s"})).body["sessionId"]
        kept = (await api.create({**body, "lifetime": "300s"})).body["sessionId"]
        metas = await _session_store(fast_redis).fetch_metas([sid, kept])
        assert metas[0] is not None
        assert metas[1] is not None
        indexes = index_plan.all_of_summary(metas[0])
        assert indexes == [
            keys.SESSIONS_BY_CREATION,
            keys.sessions_of_user(user),
            keys.sessions_of_org(org),
            keys.sessions_of_creator(metas[0].creator_id),
            keys.sessions_of_fingerprint("fp-sweep"),
            keys.sessions_by_purge(sid),
            keys.active_sessions_of_user(user),
        ]
        assert metas[0].creator_id
        # without a per-user cap nothing reads the activity index, so none is kept
        assert await _indexes_holding(redis, sid, indexes) == indexes[:-1]
        session_keys = [keys.session(sid), keys.session_fence(sid)]

        clock.advance(10_000 + 60_000 + 1_000)  # past expiration + retention: due
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10  # the sweeper runs every 50 ms; generous on a slow box
        while await redis.exists(keys.session(sid)) and loop.time() < deadline:
            await asyncio.sleep(0.02)

        assert [key for key in session_keys if await redis.exists(key)] == []
        assert await _indexes_holding(redis, sid, indexes) == []
        # a session not yet due is left alone, in every index
        kept_indexes = index_plan.all_of_summary(metas[1])
        assert await _indexes_holding(redis, kept, kept_indexes) == kept_indexes[:-1]
