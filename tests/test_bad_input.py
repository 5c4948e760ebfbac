"""Malformed requests on every endpoint: a clear 4xx with ZITADEL's body, never a 500, and
never a partial write (the database is byte-for-byte unchanged afterwards)."""

from __future__ import annotations

import pytest

from tests.support import ADMIN_TOKEN, Api

#: Bodies that are wrong for every JSON endpoint.
GARBAGE = [
    b"{",
    b"not json",
    b"[1, 2]",
    b'"a string"',
    b"\xff\xfe\x00",
    b'{"checks": }',
]

SESSION_CASES: list[tuple[str, str, object]] = [
    ("POST", "/v2/sessions", {"checks": {"user": {"userId": ""}}}),
    ("POST", "/v2/sessions", {"checks": {"user": {"userId": "x" * 201}}}),
    ("POST", "/v2/sessions", {"checks": {"user": {"userId": 42}}}),
    ("POST", "/v2/sessions", {"checks": {"user": {}}}),
    ("POST", "/v2/sessions", {"checks": {"user": {"userId": "a", "loginName": "b"}}}),
    ("POST", "/v2/sessions", {"checks": {"password": {"password": ""}}}),
    ("POST", "/v2/sessions", {"checks": {"password": {}}}),
    ("POST", "/v2/sessions", {"metadata": {"k": "not base64!"}}),
    ("POST", "/v2/sessions", {"metadata": {"": "YQ=="}}),
    ("POST", "/v2/sessions", {"metadata": ["k"]}),
    ("POST", "/v2/sessions", {"lifetime": "0s"}),
    ("POST", "/v2/sessions", {"lifetime": "ten seconds"}),
    ("POST", "/v2/sessions", {"lifetime": 300}),
    ("POST", "/v2/sessions", {"userAgent": {"fingerprintId": "x" * 201}}),
    ("POST", "/v2/sessions", {"userAgent": {"header": {"h": {"values": "one"}}}}),
    ("POST", "/v2/sessions", {"checks": "user"}),
    ("PATCH", "/v2/sessions/1", {"lifetime": "-1s"}),
    ("PATCH", "/v2/sessions/1", {"metadata": {"k": "%%%"}}),
    ("PATCH", "/v2/sessions/1", {"checks": {"user": {"loginName": ""}}}),
    ("DELETE", "/v2/sessions/1", {"sessionToken": 5}),
    ("POST", "/v2/sessions/search", {"query": {"limit": -1}}),
    ("POST", "/v2/sessions/search", {"query": {"offset": "minus one"}}),
    ("POST", "/v2/sessions/search", {"queries": [{}]}),
    ("POST", "/v2/sessions/search", {"queries": [{"idsQuery": {}, "userIdQuery": {"id": "u"}}]}),
    ("POST", "/v2/sessions/search", {"sortingColumn": "SESSION_FIELD_NAME_NOPE"}),
    ("POST", "/v2/sessions/search", {"sortingColumn": 7}),
    (
        "POST",
        "/v2/sessions/search",
        {"queries": [{"creationDateQuery": {"creationDate": "yesterday"}}]},
    ),
    (
        "POST",
        "/v2/sessions/search",
        {
            "queries": [
                {
                    "expirationDateQuery": {
                        "expirationDate": "2024-01-01T00:00:00Z",
                        "method": "TIMESTAMP_QUERY_METHOD_NOPE",
                    }
                }
            ]
        },
    ),
    ("POST", "/v2/sessions/search", {"queries": "all"}),
]

JSON_ENDPOINTS = [
    ("POST", "/v2/sessions"),
    ("PATCH", "/v2/sessions/1"),
    ("DELETE", "/v2/sessions/1"),
    ("POST", "/v2/sessions/search"),
    ("POST", "/v2/users/human"),
    ("POST", "/v2/users/new"),
    ("POST", "/v2/users/1/password"),
    ("POST", "/v2/users/1/email/verify"),
    ("POST", "/v2/users/1/phone/verify"),
    ("POST", "/v2/users/1/pats"),
    ("POST", "/v2/organizations"),
    ("POST", "/v2/administrators"),
]


async def _snapshot(redis) -> dict[bytes, bytes]:
    """Every key with its serialized value: any write, however partial, changes this."""
    return {key: await redis.dump(key) for key in sorted(await redis.keys("*"))}


def _assert_error_body(status: int, body: dict[str, object]) -> None:
    assert 400 <= status < 500, (status, body)
    assert isinstance(body.get("code"), int)
    assert isinstance(body.get("message"), str)
    assert body["message"]


@pytest.mark.parametrize(("method", "path", "body"), SESSION_CASES)
async def test_invalid_session_requests_are_400_and_write_nothing(
    api: Api, redis, method, path, body
):
    before = await _snapshot(redis)
    reply = await api.call(method, path, body=body)
    assert reply.status == 400, reply.body
    assert reply.body["code"] in (3, 9)
    assert await _snapshot(redis) == before


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("raw", GARBAGE)
async def test_garbage_bodies_are_refused_on_every_endpoint(client, redis, method, path, raw):
    before = await _snapshot(redis)
    response = await client.request(
        method,
        path,
        data=raw,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    _assert_error_body(response.status, await response.json())
    assert await _snapshot(redis) == before


@pytest.mark.settings(max_body_bytes=4096)
async def test_an_oversized_body_is_413(client, redis):
    before = await _snapshot(redis)
    body = b'{"metadata": {"k": "' + b"A" * 8192 + b'"}}'
    response = await client.post(
        "/v2/sessions",
        data=body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status == 413
    _assert_error_body(response.status, await response.json())
    assert await _snapshot(redis) == before


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic abc", "Bearer nope", "Bearer s.1.x", "Bearer p.nope.secret"],
)
async def test_missing_or_invalid_bearer_is_401(client, header):
    headers = {"Authorization": header} if header else {}
    response = await client.post("/v2/sessions", json={}, headers=headers)
    assert response.status == 401
    assert (await response.json())["code"] == 16


async def test_unknown_route_and_wrong_method(client):
    unknown = await client.get("/v2/nothing", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (unknown.status, (await unknown.json())["code"]) == (404, 5)
    wrong = await client.put("/v2/sessions", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (wrong.status, (await wrong.json())["code"]) == (405, 12)


async def test_snake_case_input_is_accepted(api: Api):
    reply = await api.call(
        "POST",
        "/v2/sessions",
        body={"user_agent": {"fingerprint_id": "fp"}, "metadata": {"some_key": "YQ=="}},
    )
    assert reply.status == 201
    got = await api.get(reply.body["sessionId"])
    assert got.body["session"]["userAgent"] == {"fingerprintId": "fp"}
    assert got.body["session"]["metadata"] == {"some_key": "YQ=="}
