"""The Connect transport speaks the Connect protocol (unary, JSON codec) on the wire.

Every test talks raw HTTP to the real application (``client``): the request bytes and headers
are built here, the answers are read as plain JSON. What is proven: which requests Connect
accepts (content types, methods, empty and chunked bodies, protocol version, timeouts,
proto3 JSON forms: numbers or strings for int64, snake_case names, enums by name or number,
RFC 3339 offsets), that success is always 200, that unknown and not-built methods are told
apart (404 vs 501), and that every error class the API produces arrives as a Connect error
body with Connect's code name, the HTTP status of Connect's table and a ``details`` entry
whose ``value`` decodes, with the protobuf runtime and a descriptor written here (not the
service's code), as ZITADEL's ``zitadel.v1.ErrorDetail`` or ``CredentialsCheckError``. The
path parameters of REST travel in the body, and the REST middleware (auth, error mapping)
applies to Connect unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message
from multidict import CIMultiDictProxy

from tests.support import ADMIN_TOKEN, PASSWORD, Api

Client = TestClient[web.Request, web.Application]
Headers = CIMultiDictProxy[str]

JSON = "application/json"
SESSION = "/zitadel.session.v2.SessionService"
SESSION_BETA = "/zitadel.session.v2beta.SessionService"
USER = "/zitadel.user.v2.UserService"
CREATE = f"{SESSION}/CreateSession"
GET = f"{SESSION}/GetSession"
SET = f"{SESSION}/SetSession"
LIST = f"{SESSION}/ListSessions"

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


async def exchange(
    client: Client,
    path: str,
    body: Any = None,
    headers: Mapping[str, str | None] | None = None,
    *,
    http_method: str = "POST",
) -> tuple[int, Headers, dict[str, Any], Headers]:
    """One raw Connect call; returns (status, headers, JSON body or ``{}``, request headers).

    ``body`` is a JSON value (encoded here), ``bytes`` sent verbatim, or an async iterator
    of ``bytes`` (sent chunked); ``None`` is ``{}`` for POST and no body otherwise.
    ``headers`` override the defaults (JSON content type, the admin bearer); a header given
    as ``None`` is not sent at all.
    """
    wanted: dict[str, str | None] = {
        "Content-Type": JSON,
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        **(headers or {}),
    }
    sent = {name: value for name, value in wanted.items() if value is not None}
    skip = [name for name, value in wanted.items() if value is None]
    data: Any
    if body is None:
        data = b"{}" if http_method == "POST" else None
    elif isinstance(body, bytes) or hasattr(body, "__aiter__"):
        data = body
    else:
        data = json.dumps(body).encode()
    async with client.request(
        http_method, path, data=data, headers=sent, skip_auto_headers=skip
    ) as response:
        raw = await response.read()
        payload = json.loads(raw) if raw else {}
        return response.status, response.headers, payload, response.request_info.headers


async def connect(
    client: Client,
    path: str,
    body: Any = None,
    headers: Mapping[str, str | None] | None = None,
    *,
    http_method: str = "POST",
) -> tuple[int, Headers, dict[str, Any]]:
    """``exchange`` without the request headers: (status, headers, JSON body)."""
    status, answer_headers, payload, _ = await exchange(
        client, path, body, headers, http_method=http_method
    )
    return status, answer_headers, payload


def _message_classes() -> dict[str, type[Message]]:
    """ZITADEL's ``zitadel/message.proto`` detail messages, from a descriptor written here."""
    string = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
    int32 = descriptor_pb2.FieldDescriptorProto.TYPE_INT32
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    proto = descriptor_pb2.FileDescriptorProto(
        name="test/zitadel_message.proto", package="zitadel.v1", syntax="proto3"
    )
    error_detail = proto.message_type.add(name="ErrorDetail")
    error_detail.field.add(name="id", number=1, type=string, label=optional)
    error_detail.field.add(name="message", number=2, type=string, label=optional)
    credentials = proto.message_type.add(name="CredentialsCheckError")
    credentials.field.add(name="id", number=1, type=string, label=optional)
    credentials.field.add(name="message", number=2, type=string, label=optional)
    credentials.field.add(name="failed_attempts", number=3, type=int32, label=optional)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        f"zitadel.v1.{name}": message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"zitadel.v1.{name}")
        )
        for name in ("ErrorDetail", "CredentialsCheckError")
    }


MESSAGES = _message_classes()


def unpadded_b64decode(value: str) -> bytes:
    """Connect's ``value``: standard base64, padding optional."""
    return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)


def decode_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """A Connect error detail's ``value`` as its protobuf message, fields by proto name.

    Re-encoding must give the same bytes: the value holds exactly the message, nothing more.
    """
    raw = unpadded_b64decode(detail["value"])
    message = MESSAGES[detail["type"]]()
    message.ParseFromString(raw)
    assert message.SerializeToString() == raw
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def assert_connect_error(
    status: int,
    body: dict[str, Any],
    expected_status: int,
    code: str,
    error_id: str,
    detail_type: str = "zitadel.v1.ErrorDetail",
) -> dict[str, Any]:
    """A Connect error body with one ZITADEL detail; returns the decoded detail message."""
    assert status == expected_status, body
    assert body["code"] == code
    assert body["message"].endswith(f"({error_id})")
    assert len(body["details"]) == 1
    detail = body["details"][0]
    assert detail["type"] == detail_type
    assert isinstance(detail["value"], str)
    assert detail["value"]
    assert detail["debug"]["id"] == error_id
    decoded = decode_detail(detail)
    assert decoded["id"] == error_id
    assert decoded["message"] == detail["debug"]["message"]
    assert body["message"] == f"{decoded['message']} ({error_id})"
    return decoded


def assert_plain_error(status: int, body: dict[str, Any], expected_status: int, code: str) -> None:
    """A Connect error body without details (validation, protocol and routing errors)."""
    assert status == expected_status, body
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    assert "details" not in body


async def new_session(client: Client, body: Any = None) -> dict[str, Any]:
    status, _, reply = await connect(client, CREATE, body if body is not None else {})
    assert status == 200, reply
    return reply


async def list_ids(client: Client, body: dict[str, Any]) -> list[str]:
    status, _, reply = await connect(client, LIST, body)
    assert status == 200, reply
    return [session["id"] for session in reply.get("sessions", [])]


# ---------------------------------------------------------------------------------------------
# 1. content types
# ---------------------------------------------------------------------------------------------


async def test_application_json_is_accepted(client: Client):
    status, headers, body = await connect(client, CREATE, b"{}", {"Content-Type": JSON})
    assert status == 200, body
    assert headers["Content-Type"].startswith(JSON)
    assert body["sessionId"]


async def test_application_json_with_a_utf8_charset_is_accepted(client: Client):
    status, _, body = await connect(
        client, CREATE, b"{}", {"Content-Type": "application/json; charset=utf-8"}
    )
    assert status == 200, body
    assert body["sessionId"]


async def test_application_proto_is_415_with_accept_post_json_and_a_connect_error_body(
    client: Client,
):
    status, headers, body = await connect(
        client, CREATE, b"", {"Content-Type": "application/proto"}
    )
    assert_plain_error(status, body, 415, "unimplemented")
    assert headers["Accept-Post"] == JSON
    assert "application/proto" in body["message"]


async def test_a_missing_content_type_is_415_with_accept_post_json(client: Client):
    status, headers, body, sent = await exchange(client, CREATE, b"{}", {"Content-Type": None})
    assert "Content-Type" not in sent
    assert_plain_error(status, body, 415, "unimplemented")
    assert headers["Accept-Post"] == JSON


async def test_text_plain_is_415_with_accept_post_json(client: Client):
    status, headers, body = await connect(client, CREATE, b"{}", {"Content-Type": "text/plain"})
    assert_plain_error(status, body, 415, "unimplemented")
    assert headers["Accept-Post"] == JSON
    assert "text/plain" in body["message"]


# ---------------------------------------------------------------------------------------------
# 2. HTTP method
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("http_method", ["GET", "PUT"])
async def test_a_method_other_than_post_is_405_with_allow_post_and_a_connect_error_body(
    client: Client, http_method: str
):
    status, headers, body = await connect(client, GET, http_method=http_method)
    assert_plain_error(status, body, 405, "unimplemented")
    assert headers["Allow"] == "POST"


# ---------------------------------------------------------------------------------------------
# 3. empty body
# ---------------------------------------------------------------------------------------------


async def test_an_empty_body_is_the_empty_message_for_create_session(client: Client):
    status, _, body, sent = await exchange(client, CREATE, b"")
    assert sent["Content-Length"] == "0"
    assert status == 200, body
    assert body["sessionId"]
    assert body["sessionToken"].startswith(f"s.{body['sessionId']}.")


async def test_an_empty_body_on_get_session_is_invalid_argument_as_session_id_is_required(
    client: Client,
):
    status, _, body, sent = await exchange(client, GET, b"")
    assert sent["Content-Length"] == "0"
    assert_plain_error(status, body, 400, "invalid_argument")
    assert "GetSessionRequest.SessionId" in body["message"]


# ---------------------------------------------------------------------------------------------
# 4. success is 200
# ---------------------------------------------------------------------------------------------


async def test_create_session_answers_200_over_connect_where_rest_answers_201_with_same_fields(
    client: Client, api: Api
):
    request = {"metadata": {"k": "dg=="}}
    status, headers, body = await connect(client, CREATE, request)
    rest = await api.create(request)
    assert (status, rest.status) == (200, 201)
    assert headers["Content-Type"].startswith(JSON)
    assert set(body) == set(rest.body) == {"details", "sessionId", "sessionToken"}
    assert set(body["details"]) == set(rest.body["details"])
    for answer in (body, rest.body):
        assert isinstance(answer["details"]["sequence"], str)
        assert answer["details"]["sequence"].isdigit()
        assert isinstance(answer["sessionId"], str)
        assert answer["sessionToken"].startswith(f"s.{answer['sessionId']}.")
    assert body["details"]["resourceOwner"] == rest.body["details"]["resourceOwner"]
    assert body["sessionId"] != rest.body["sessionId"]


# ---------------------------------------------------------------------------------------------
# 5. unknown vs not built
# ---------------------------------------------------------------------------------------------


async def test_an_unknown_method_of_a_served_service_is_404(client: Client):
    status, _, body = await connect(client, f"{SESSION}/Nope", {})
    assert_plain_error(status, body, 404, "unimplemented")
    assert f"{SESSION}/Nope" in body["message"]


async def test_an_unknown_service_is_404(client: Client):
    status, _, body = await connect(client, "/zitadel.nope.v1.NopeService/Get", {})
    assert_plain_error(status, body, 404, "unimplemented")
    assert "/zitadel.nope.v1.NopeService/Get" in body["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/zitadel.user.v2.UserService/ListUsers",
        "/zitadel.org.v2.OrganizationService/ListOrganizations",
    ],
)
async def test_a_zitadel_method_not_built_yet_is_501_unimplemented(client: Client, path: str):
    status, _, body = await connect(client, path, {})
    assert_connect_error(status, body, 501, "unimplemented", "CONNECT-notYet")
    assert body["details"][0]["debug"]["method"] == path.removeprefix("/")


# ---------------------------------------------------------------------------------------------
# 6. one error body per error class
# ---------------------------------------------------------------------------------------------


async def test_a_list_limit_over_1000_is_invalid_argument_400_with_query_4m0fs(client: Client):
    status, _, body = await connect(client, LIST, {"query": {"limit": 1001}})
    assert_connect_error(status, body, 400, "invalid_argument", "QUERY-4M0fs")


async def test_an_unknown_session_is_not_found_404_with_query_sfeaa(client: Client):
    status, _, body = await connect(client, GET, {"sessionId": "no-such-session"})
    assert_connect_error(status, body, 404, "not_found", "QUERY-SFeaa")


async def test_a_wrong_session_token_is_permission_denied_403_with_query_dsfr3(client: Client):
    created = await new_session(client)
    sid = created["sessionId"]
    status, _, body = await connect(
        client, GET, {"sessionId": sid, "sessionToken": f"s.{sid}.not-the-secret"}
    )
    assert_connect_error(status, body, 403, "permission_denied", "QUERY-dsfr3")


@pytest.mark.parametrize(
    "authorization", [None, "Bearer nope", "Basic " + base64.b64encode(b"a:b").decode(), "Bearer"]
)
async def test_a_missing_or_bad_bearer_is_unauthenticated_401_with_auth_7fs1e(
    client: Client, authorization: str | None
):
    status, _, body = await connect(client, CREATE, {}, {"Authorization": authorization})
    assert_connect_error(status, body, 401, "unauthenticated", "AUTH-7fs1e")


async def test_a_user_check_on_a_locked_user_is_failed_precondition_400_with_session_gj4ko(
    client: Client, api: Api
):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/lock", body={})).status == 200
    status, _, body = await connect(client, CREATE, {"checks": {"user": {"userId": user}}})
    assert_connect_error(status, body, 400, "failed_precondition", "SESSION-Gj4ko")


async def test_a_taken_username_is_already_exists_409_with_command_k2h3d(client: Client, api: Api):
    await api.human("taken")
    request = {
        "username": "taken",
        "profile": {"givenName": "Given", "familyName": "Family"},
        "email": {"email": "other@example.com", "isVerified": True},
    }
    status, _, body = await connect(client, f"{USER}/AddHumanUser", request)
    assert_connect_error(status, body, 409, "already_exists", "COMMAND-k2h3d")


async def test_an_unsupported_field_is_unimplemented_501_naming_it(client: Client):
    request = {"name": "org-with-new-admin", "admins": [{"human": {}}]}
    status, _, body = await connect(
        client, "/zitadel.org.v2.OrganizationService/AddOrganization", request
    )
    assert_connect_error(status, body, 501, "unimplemented", "USERS-notYet")
    assert body["details"][0]["debug"]["unsupported"] == ["admins.human"]


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"sessionId": 7', b"\xff"])
async def test_malformed_json_is_invalid_argument_400_without_details(client: Client, raw: bytes):
    status, _, body = await connect(client, GET, raw)
    assert_plain_error(status, body, 400, "invalid_argument")


# ---------------------------------------------------------------------------------------------
# 7. the detail values are ZITADEL's protobuf messages
# ---------------------------------------------------------------------------------------------


@pytest.mark.settings(lockout_max_password_attempts=5)
async def test_a_wrong_password_is_a_credentials_check_error_counting_failed_attempts(
    client: Client, api: Api
):
    user = await api.human()
    request = {"checks": {"user": {"userId": user}, "password": {"password": "wrong"}}}
    decoded = []
    for _ in range(2):
        status, _, body = await connect(client, CREATE, request)
        message = assert_connect_error(
            status,
            body,
            400,
            "invalid_argument",
            "COMMAND-3M0fs",
            detail_type="zitadel.v1.CredentialsCheckError",
        )
        assert body["details"][0]["debug"]["failedAttempts"] == message["failed_attempts"]
        decoded.append(message)
    assert decoded == [
        {"id": "COMMAND-3M0fs", "message": "Password is invalid", "failed_attempts": attempts}
        for attempts in (1, 2)
    ]


async def test_an_error_detail_value_is_a_protobuf_zitadel_v1_error_detail(client: Client):
    status, _, body = await connect(client, GET, {"sessionId": "missing"})
    assert status == 404
    detail = body["details"][0]
    raw = unpadded_b64decode(detail["value"])
    message = MESSAGES["zitadel.v1.ErrorDetail"]()
    message.ParseFromString(raw)
    assert json_format.MessageToDict(message, preserving_proto_field_name=True) == {
        "id": "QUERY-SFeaa",
        "message": "Session does not exist",
    }
    # field 1 (id), length-delimited, then field 2 (message): nothing else on the wire
    assert raw == b"\x0a\x0bQUERY-SFeaa\x12\x16Session does not exist"


# ---------------------------------------------------------------------------------------------
# 8. timeouts
# ---------------------------------------------------------------------------------------------


async def test_a_zero_timeout_on_a_call_awaiting_redis_is_504_deadline_exceeded(client: Client):
    sid = (await new_session(client))["sessionId"]
    status, _, body = await connect(client, GET, {"sessionId": sid}, {"Connect-Timeout-Ms": "0"})
    assert_connect_error(status, body, 504, "deadline_exceeded", "CONNECT-deadline")
    status, _, body = await connect(client, GET, {"sessionId": sid})
    assert status == 200, body


@pytest.mark.parametrize("timeout", ["abc", "", "-1", "1.5", "12345678901"])
async def test_a_malformed_timeout_is_invalid_argument_400(client: Client, timeout: str):
    status, _, body = await connect(client, CREATE, {}, {"Connect-Timeout-Ms": timeout})
    assert_plain_error(status, body, 400, "invalid_argument")
    assert "Connect-Timeout-Ms" in body["message"]


@pytest.mark.parametrize(
    "timeout",
    ["\u00b2", "\u0661\u0660\u0660\u0660\u0660"],
    ids=["superscript-two", "arabic-indic-10000"],
)
async def test_a_timeout_of_non_ascii_digits_is_invalid_argument_400(client: Client, timeout: str):
    # Connect's Timeout-Value is at most 10 ASCII digits. U+00B2 (superscript two) and
    # U+0661 U+0660... (Arabic-Indic "10000"), sent as UTF-8 (aiohttp decodes header values
    # as UTF-8), are malformed headers like any other: neither a 500 nor a 10 s deadline
    status, _, body = await connect(client, CREATE, {}, {"Connect-Timeout-Ms": timeout})
    assert_plain_error(status, body, 400, "invalid_argument")
    assert "Connect-Timeout-Ms" in body["message"]


async def test_a_generous_timeout_succeeds(client: Client):
    status, _, body = await connect(client, CREATE, {}, {"Connect-Timeout-Ms": "10000"})
    assert status == 200, body
    assert body["sessionId"]


# ---------------------------------------------------------------------------------------------
# 9. protocol version
# ---------------------------------------------------------------------------------------------


async def test_connect_protocol_version_1_is_accepted(client: Client):
    status, _, body = await connect(client, CREATE, {}, {"Connect-Protocol-Version": "1"})
    assert status == 200, body
    assert body["sessionId"]


async def test_connect_protocol_version_2_is_invalid_argument_400(client: Client):
    status, _, body = await connect(client, CREATE, {}, {"Connect-Protocol-Version": "2"})
    assert_plain_error(status, body, 400, "invalid_argument")
    assert "Connect-Protocol-Version" in body["message"]


# ---------------------------------------------------------------------------------------------
# 10. proto3 JSON input forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query": {"offset": 0, "limit": 10}}',
        b'{"query": {"offset": "0", "limit": "10"}}',
        b'{"query": {"offset": "0"}}',
    ],
    ids=["numbers", "strings", "offset-only"],
)
async def test_int64_fields_accept_json_numbers_and_strings(client: Client, raw: bytes):
    created = {(await new_session(client))["sessionId"] for _ in range(2)}
    status, _, body = await connect(client, LIST, raw)
    assert status == 200, body
    assert {session["id"] for session in body["sessions"]} == created
    assert body["details"]["totalResult"] == "2"


async def test_snake_case_session_id_is_accepted_by_get_session(client: Client):
    sid = (await new_session(client))["sessionId"]
    status, _, body = await connect(client, GET, f'{{"session_id": "{sid}"}}'.encode())
    assert status == 200, body
    assert body["session"]["id"] == sid


async def test_snake_case_user_id_is_accepted_by_create_session(client: Client, api: Api):
    user = await api.human()
    raw = f'{{"checks": {{"user": {{"user_id": "{user}"}}}}}}'.encode()
    status, _, body = await connect(client, CREATE, raw)
    assert status == 200, body
    got = await api.get(body["sessionId"])
    assert got.body["session"]["factors"]["user"]["id"] == user


@pytest.mark.parametrize("column", ["SESSION_FIELD_NAME_CREATION_DATE", 1])
async def test_an_enum_is_accepted_by_name_and_by_number(client: Client, column: str | int):
    first = (await new_session(client))["sessionId"]
    await asyncio.sleep(0.005)  # distinct creation milliseconds: the order is not a tie-break
    second = (await new_session(client))["sessionId"]
    ids = [{"idsQuery": {"ids": [first, second]}}]
    by_creation = {"query": {"asc": True}, "queries": ids, "sortingColumn": column}
    assert await list_ids(client, by_creation) == [first, second]
    # asc only applies to the creation date column: unspecified lists newest first
    unspecified = {**by_creation, "sortingColumn": 0}
    assert await list_ids(client, unspecified) == [second, first]


@pytest.mark.parametrize("column", ["SESSION_FIELD_NAME_NOPE", 7])
async def test_an_undefined_enum_name_or_number_is_invalid_argument(
    client: Client, column: str | int
):
    status, _, body = await connect(client, LIST, {"sortingColumn": column})
    assert_plain_error(status, body, 400, "invalid_argument")


def _query(at: str, method: str) -> dict[str, Any]:
    return {"queries": [{"creationDateQuery": {"creationDate": at, "method": method}}]}


async def test_timestamps_with_offsets_and_fractions_are_accepted(client: Client):
    sid = (await new_session(client))["sessionId"]
    status, _, got = await connect(client, GET, {"sessionId": sid})
    assert status == 200, got
    created = dt.datetime.fromisoformat(got["session"]["creationDate"].replace("Z", "+00:00"))
    greater, less = "TIMESTAMP_QUERY_METHOD_GREATER", "TIMESTAMP_QUERY_METHOD_LESS"
    assert await list_ids(client, _query("2020-01-01T01:00:00.123+01:00", greater)) == [sid]
    assert await list_ids(client, _query("2020-01-01T01:00:00.123+01:00", less)) == []
    # 30 min before creation, written as wall time of +01:00 (30 min *after* it if misread)
    before = (created - dt.timedelta(minutes=30)).astimezone(dt.timezone(dt.timedelta(hours=1)))
    text = before.isoformat(timespec="milliseconds")
    assert text.endswith("+01:00")
    assert await list_ids(client, _query(text, greater)) == [sid]
    assert await list_ids(client, _query(text, less)) == []
    # 30 min after creation at -01:00 (30 min *before* it if the offset were ignored)
    after = (created + dt.timedelta(minutes=30)).astimezone(dt.timezone(dt.timedelta(hours=-1)))
    text = after.isoformat(timespec="microseconds")
    assert await list_ids(client, _query(text, "TIMESTAMP_QUERY_METHOD_LESS")) == [sid]
    assert await list_ids(client, _query(text, greater)) == []


# ---------------------------------------------------------------------------------------------
# 11. chunked bodies
# ---------------------------------------------------------------------------------------------


async def test_a_chunked_request_body_is_read_whole(client: Client, api: Api):
    user = await api.human()
    raw = json.dumps({"checks": {"user": {"userId": user}}, "metadata": {"k": "dg=="}}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 7):
            yield raw[start : start + 7]

    status, _, body, sent = await exchange(client, CREATE, chunks())
    assert sent["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in sent
    assert status == 200, body
    got = await api.get(body["sessionId"])
    assert got.body["session"]["factors"]["user"]["id"] == user
    assert got.body["session"]["metadata"] == {"k": "dg=="}


# ---------------------------------------------------------------------------------------------
# 12. path parameters travel in the body
# ---------------------------------------------------------------------------------------------


async def test_set_session_takes_the_session_id_from_the_body(client: Client, api: Api):
    created = await new_session(client)
    sid = created["sessionId"]
    status, _, body = await connect(client, SET, {"sessionId": sid, "metadata": {"k": "dg=="}})
    assert status == 200, body
    assert body["sessionToken"].startswith(f"s.{sid}.")
    assert body["sessionToken"] != created["sessionToken"]
    assert int(body["details"]["sequence"]) > int(created["details"]["sequence"])
    got = await api.get(sid)
    assert got.status == 200
    assert got.body["session"]["metadata"] == {"k": "dg=="}


async def test_set_session_without_a_session_id_is_invalid_argument_400(client: Client):
    status, _, body = await connect(client, SET, {"metadata": {"k": "dg=="}})
    assert_plain_error(status, body, 400, "invalid_argument")
    assert "SetSessionRequest.SessionId" in body["message"]


# ---------------------------------------------------------------------------------------------
# 13. the same middleware
# ---------------------------------------------------------------------------------------------


async def test_a_checked_users_session_token_is_a_bearer_for_its_own_session(
    client: Client, api: Api
):
    user = await api.human()
    login = await api.session_for(user)
    sid, token = login.body["sessionId"], login.body["sessionToken"]
    status, _, body = await connect(
        client, GET, {"sessionId": sid}, {"Authorization": f"Bearer {token}"}
    )
    assert status == 200, body
    assert body["session"]["id"] == sid
    assert body["session"]["factors"]["user"]["id"] == user
    assert "verifiedAt" in body["session"]["factors"]["password"]


async def test_the_v2beta_session_service_creates_sessions(client: Client, api: Api):
    user = await api.human()
    request = {"checks": {"user": {"userId": user}, "password": {"password": PASSWORD}}}
    status, _, body = await connect(client, f"{SESSION_BETA}/CreateSession", request)
    assert status == 200, body
    assert body["sessionToken"].startswith(f"s.{body['sessionId']}.")
    got = await api.get(body["sessionId"])
    assert got.status == 200
    assert got.body["session"]["factors"]["user"]["id"] == user
