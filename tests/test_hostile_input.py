"""Hostile input is a 400 with ZITADEL's error body, never a 500, a hang or a partial write.

Each case here once gave a 500 or stalled a session actor: an expiration past year 9999,
JSON nested deeper than the decoders' recursion, a list offset of 2^63, a body that claims
gzip and is not; and sessions grew without bound through their metadata and user-agent
headers. Limits are settings (see README); the database is byte-for-byte unchanged after a
refused request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from actors.errors import InvalidArgument
from actors.limits import MAX_TIMESTAMP_MS, Limits, check_metadata
from app.transports.http import too_deep
from tests.support import ADMIN_TOKEN, Api, b64
from tests.test_bad_input import _snapshot as _full_snapshot

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
TEN_THOUSAND_YEARS = "315360000000s"


async def _snapshot(redis) -> dict[bytes, object]:
    """The data: a refused write to an existing session still takes (and gives back) its
    lease, which bumps the fencing counter; nothing else may change.

    Hashes are compared by content: DUMP of a large hash follows its dict order, which
    Redis's incremental rehashing may change without any write.
    """
    data: dict[bytes, object] = {}
    for key, dumped in (await _full_snapshot(redis)).items():
        if key.endswith((b":lease", b":fence")):
            continue
        kind = await redis.type(key)
        data[key] = sorted((await redis.hgetall(key)).items()) if kind == b"hash" else dumped
    return data


async def _refused(api: Api, redis, method: str, path: str, body: object) -> dict[str, Any]:
    before = await _snapshot(redis)
    reply = await api.call(method, path, body=body)
    assert reply.status == 400, reply.body
    assert await _snapshot(redis) == before
    return reply.body


async def test_a_lifetime_past_year_9999_is_refused_on_create(api: Api, redis):
    """The wire allows 11 digits of seconds (3,168 years); the rules refuse year 10000."""
    body = await _refused(api, redis, "POST", "/v2/sessions", {"lifetime": TEN_THOUSAND_YEARS})
    assert body["code"] == 3
    assert "Lifetime" in body["message"]


async def test_a_lifetime_past_year_9999_is_refused_on_set_at_once(api: Api, redis):
    sid = (await api.create({})).body["sessionId"]
    started = time.monotonic()
    body = await _refused(
        api, redis, "PATCH", f"/v2/sessions/{sid}", {"lifetime": TEN_THOUSAND_YEARS}
    )
    assert body["code"] == 3
    assert time.monotonic() - started < 2  # once a 10 s hang: the actor died
    # and the session's actor still serves it
    assert (await api.set(sid, {"metadata": {"k": b64("v")}})).status == 200


def test_the_longest_lifetime_ends_exactly_at_the_last_timestamp():
    from actors.limits import check_expiration

    check_expiration(1_000, MAX_TIMESTAMP_MS - 1_000)
    with pytest.raises(InvalidArgument):
        check_expiration(1_000, MAX_TIMESTAMP_MS - 999)


def _nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


@pytest.mark.parametrize("depth", [65, 1500, 100_000])
async def test_json_nested_too_deep_in_a_free_form_field_is_refused(client, redis, depth):
    before = await _snapshot(redis)
    raw = (
        '{"checks":{"user":{"userId":"u"},"webAuthN":{"credentialAssertionData":{"a":'
        + _nested(depth)
        + "}}}}"
    )
    response = await client.post("/v2/sessions", data=raw.encode(), headers=AUTH)
    body = await response.json()
    assert response.status == 400, body
    assert "nested deeper than 64" in body["message"]
    assert await _snapshot(redis) == before


async def test_deep_nesting_in_a_snake_case_body_is_refused(client, redis):
    """Bodies with ``_`` take the renaming path, which recursed in Python (RecursionError)."""
    raw = '{"user_agent":{"header":{"x":' + _nested(500) + "}}}"
    response = await client.post("/v2/sessions", data=raw.encode(), headers=AUTH)
    assert response.status == 400, await response.text()


def test_brackets_inside_strings_do_not_count_as_nesting():
    assert not too_deep(b'{"a":"' + b"[" * 500 + b'"}', 64)
    assert not too_deep(b'{"a":"\\"' + b"[" * 500 + b'"}', 64)
    assert too_deep(b'{"a":"\\\\"}' + b"[" * 500, 64)
    assert not too_deep(_nested(64).encode(), 64)
    assert too_deep(_nested(65).encode(), 64)


@pytest.mark.parametrize("offset", [2**63, 2**64, "9223372036854775808"])
async def test_a_list_offset_of_2_to_the_63_is_refused(api: Api, redis, offset):
    body = await _refused(api, redis, "POST", "/v2/sessions/search", {"query": {"offset": offset}})
    assert body["code"] == 3


async def test_the_largest_list_offset_finds_nothing(api: Api):
    await api.create({})
    reply = await api.search({"query": {"offset": str(2**63 - 1)}})
    assert reply.status == 200, reply.body
    assert "sessions" not in reply.body


async def test_a_body_that_claims_gzip_and_is_not_is_refused(client, redis):
    before = await _snapshot(redis)
    response = await client.post(
        "/v2/sessions", data=b"not gzip at all", headers={**AUTH, "Content-Encoding": "gzip"}
    )
    assert response.status == 400, await response.text()
    assert (await response.json())["code"] == 3
    assert await _snapshot(redis) == before


# -- per-session bounds ------------------------------------------------------------------------


def test_metadata_limits_are_checked_on_the_merged_map():
    limits = Limits(
        metadata_keys=2, metadata_key_chars=3, metadata_value_bytes=4, metadata_bytes=10
    )
    check_metadata({"a": b"1234", "b": b"1"}, limits)
    for metadata, error_id in [
        ({"a": b"1", "b": b"1", "c": b"1"}, "SESSION-metaKeys"),
        ({"abcd": b"1"}, "SESSION-metaKey"),
        ({"a": b"12345"}, "SESSION-metaValue"),
        ({"abc": b"1234", "xyz": b"1234"}, "SESSION-metaSize"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            check_metadata(metadata, limits)
        assert caught.value.error_id == error_id


@pytest.mark.settings(max_metadata_keys=3)
async def test_too_many_metadata_keys_are_refused_counting_what_is_stored(api: Api, redis):
    sid = (await api.create({"metadata": {"a": b64("1"), "b": b64("2")}})).body["sessionId"]
    assert (await api.set(sid, {"metadata": {"c": b64("3")}})).status == 200
    body = await _refused(api, redis, "PATCH", f"/v2/sessions/{sid}", {"metadata": {"d": b64("4")}})
    assert body["details"][0]["id"] == "SESSION-metaKeys"
    # deleting one makes room again
    assert (await api.set(sid, {"metadata": {"a": "", "d": b64("4")}})).status == 200


async def test_a_metadata_value_over_4_kib_is_refused(api: Api, redis):
    body = await _refused(api, redis, "POST", "/v2/sessions", {"metadata": {"k": b64("x" * 4097)}})
    assert body["details"][0]["id"] == "SESSION-metaValue"


async def test_metadata_over_64_kib_in_total_is_refused_even_in_small_patches(api: Api, redis):
    sid = (await api.create({})).body["sessionId"]
    for n in range(15):  # 15 x 4 KiB = 60 KiB: fine
        reply = await api.set(sid, {"metadata": {f"k{n}": b64("x" * 4096)}})
        assert reply.status == 200, reply.body
    body = await _refused(
        api, redis, "PATCH", f"/v2/sessions/{sid}", {"metadata": {"k15": b64("x" * 4096)}}
    )
    assert body["details"][0]["id"] == "SESSION-metaSize"


@pytest.mark.parametrize(
    ("header", "error_id"),
    [
        ({f"h{n}": {"values": ["v"]} for n in range(65)}, "SESSION-uaHeaders"),
        ({"h": {"values": ["v"] * 17}}, "SESSION-uaValues"),
        ({"h": {"values": ["v" * 4097]}}, "SESSION-uaValue"),
    ],
)
async def test_user_agent_headers_are_bounded(api: Api, redis, header, error_id):
    body = await _refused(api, redis, "POST", "/v2/sessions", {"userAgent": {"header": header}})
    assert body["details"][0]["id"] == error_id


async def test_concurrent_hostile_requests_leave_the_session_usable(api: Api):
    """A burst of refused commands on one session: each gets its 400, the actor lives on."""
    sid = (await api.create({})).body["sessionId"]
    replies = await asyncio.gather(
        *[api.set(sid, {"lifetime": TEN_THOUSAND_YEARS}) for _ in range(10)],
        *[api.set(sid, {"metadata": {"k": b64("x" * 5000)}}) for _ in range(10)],
    )
    assert [reply.status for reply in replies] == [400] * 20
    assert (await api.set(sid, {"metadata": {"ok": b64("1")}})).status == 200
