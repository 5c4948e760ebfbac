"""The OpenAPI document's PingOne part: every facade route, and schemas the server agrees with.

Each route of ``app.transports.pingone.ROUTES`` is an operation with its method, success
status, parameters (the ``ST`` cookie on ``/sessions/me``) and PingOne's error body; the request
schema accepts the seed's body and refuses what ``pingone_wire.validate`` refuses; the
response schemas validate what the running application answers (formats checked too).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

import jsonschema_rs
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.services import pingone_wire
from app.services.pingone_wire import InvalidField, SessionIn
from app.transports import openapi, pingone
from tests.support import ADMIN_TOKEN, Api
from tests.test_pingone_api import POLICY_ID, iso
from tests.test_pingone_api import seed_body as pingone_seed_body

ERROR_REF = {"$ref": "#/components/schemas/PingOneError"}
BEARER = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

#: (method, path under the environment) → (operationId, success status).
EXPECTED = {
    ("POST", "/sessions"): ("PingOne_CreateSession", 201),
    ("GET", "/sessions/me"): ("PingOne_ReadSessionMe", 200),
    ("PUT", "/sessions/me"): ("PingOne_UpdateSessionMe", 200),
    ("DELETE", "/sessions/me"): ("PingOne_DeleteSessionMe", 204),
    ("POST", "/sessions/me"): ("PingOne_SignOffSessionMe", 204),
    ("GET", "/sessions/{sessionId}"): ("PingOne_ReadSession", 200),
    ("GET", "/users/{userId}/sessions"): ("PingOne_ReadUserSessions", 200),
    ("DELETE", "/users/{userId}/sessions"): ("PingOne_DeleteUserSessions", 204),
    ("GET", "/users/{userId}/sessions/{sessionId}"): ("PingOne_ReadUserSession", 200),
    ("DELETE", "/users/{userId}/sessions/{sessionId}"): ("PingOne_DeleteUserSession", 204),
}


def seed_body(user_id: str, token: str) -> dict[str, Any]:
    """The seed's request body, its placeholders filled in (signed on just now)."""
    at = iso(dt.datetime.now(dt.UTC))
    return pingone_seed_body(user_id, token, at, at)


@pytest.fixture(scope="module", name="document")
def _document() -> dict[str, Any]:
    return openapi.document()


def component(document: dict[str, Any], name: str) -> jsonschema_rs.Validator:
    """A validator of one component, its references resolved within the document."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{name}",
        "components": document["components"],
    }
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = document["paths"][pingone.ENVIRONMENT + path][method.lower()]
    return op


def params(op: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == where}


# -- the operations ---------------------------------------------------------------------------
def test_every_pingone_route_is_an_operation_with_its_status_and_parameters(document):
    routes = {(method, path) for method, path, _ in pingone.ROUTES}
    assert routes == set(EXPECTED)
    for method, path, _ in pingone.ROUTES:
        op = operation(document, method, path)
        operation_id, status = EXPECTED[(method, path)]
        assert op["operationId"] == operation_id
        assert op["tags"] == ["PingOne Sessions"]
        assert op["security"] == [{"bearer": []}]
        assert str(status) in op["responses"], (method, path)
        assert min(op["responses"], key=int) == str(status), "success is the only 2xx"
        in_path = params(op, "path")
        assert set(in_path) == {"envId", *re.findall(r"\{(\w+)\}", path)}
        assert all(p["required"] for p in in_path.values())
        cookie = params(op, "cookie")
        if path == "/sessions/me":
            assert cookie["ST"]["required"] is True
            assert cookie["ST"]["schema"]["minLength"] == pingone_wire.MIN_TOKEN_CHARS
        else:
            assert cookie == {}


def test_operation_ids_are_unique_across_the_document(document):
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_errors_are_pingone_bodies_and_415_only_on_the_sign_off(document):
    for method, path, _ in pingone.ROUTES:
        responses = operation(document, method, path)["responses"]
        for status in ("400", "401", "403", "404", "500", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == ERROR_REF
        assert ("415" in responses) == ((method, path) == ("POST", "/sessions/me"))
        assert "Retry-After" in responses["503"]["headers"]
    schema = document["components"]["schemas"]["PingOneError"]
    assert schema["required"] == ["id", "code", "message"]
    detail = document["components"]["schemas"]["PingOneErrorDetail"]
    assert list(detail["properties"]) == ["code", "target", "message"]
    assert detail["required"] == ["code", "message"]


def test_request_bodies_and_success_content(document):
    for method, path in (("POST", "/sessions"), ("PUT", "/sessions/me")):
        body = operation(document, method, path)["requestBody"]
        assert body["required"] is True
        assert body["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/SessionIn"
        }
    logout = operation(document, "POST", "/sessions/me")["requestBody"]
    assert logout["content"] == {pingone_wire.LOGOUT_CONTENT_TYPE: {}}
    for method, path, _ in pingone.ROUTES:
        op = operation(document, method, path)
        _, status = EXPECTED[(method, path)]
        success = op["responses"][str(status)]
        assert ("content" in success) == (status != 204)
        if status != 204:
            assert list(success["content"]) == [openapi.HAL]
        assert ("requestBody" in op) == (method in ("POST", "PUT"))


def test_query_and_shadowed_parameters(document):
    delete_all = operation(document, "DELETE", "/users/{userId}/sessions")
    assert params(delete_all, "query")["except"]["required"] is False
    assert all(
        params(operation(document, m, p), "query") == {}
        for m, p, _ in pingone.ROUTES
        if (m, p) != ("DELETE", "/users/{userId}/sessions")
    )
    # GET /sessions/me is another operation: "me" is not a session id there
    read = params(operation(document, "GET", "/sessions/{sessionId}"), "path")
    assert read["sessionId"]["schema"]["not"] == {"enum": ["me"]}
    of_user = params(operation(document, "GET", "/users/{userId}/sessions/{sessionId}"), "path")
    assert "not" not in of_user["sessionId"]["schema"]


def test_zitadel_operations_are_untouched_by_the_pingone_part(document):
    for path, ops in document["paths"].items():
        if path.startswith("/v1/"):
            continue
        for op in ops.values():
            assert "tags" not in op
            assert "PingOne" not in str(op)


# -- the request schema and the facade's validation --------------------------------------------
def server_accepts(body: dict[str, Any]) -> bool:
    """What ``POST /sessions`` decodes and validates, without the state (users, clock)."""
    try:
        pingone_wire.validate(msgspec.convert(body, SessionIn, strict=False))
    except (InvalidField, msgspec.ValidationError):
        return False
    return True


def signed_on(**fields: Any) -> dict[str, Any]:
    return {"lastSignOn": {"remoteIp": "174.1.62.19", **fields}}


def method(at: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
    return {"at": at, "policy": {"id": POLICY_ID, "type": "PINGONE"}}


def test_the_seed_body_is_schema_valid(document):
    body = seed_body("518818650203285930", secrets.token_urlsafe(24))
    component(document, "SessionIn").validate(body)
    assert server_accepts(body)


@pytest.mark.parametrize(
    ("change", "valid"),
    [
        ({"idleTimeoutInMinutes": 144000}, True),
        ({"idleTimeoutInMinutes": "0005270400"}, True),
        ({"idleTimeoutInMinutes": None}, True),
        ({"idleTimeoutInMinutes": "0"}, False),
        ({"idleTimeoutInMinutes": 0}, False),
        ({"idleTimeoutInMinutes": "5270401"}, False),
        ({"idleTimeoutInMinutes": 5270401}, False),
        ({"idleTimeoutInMinutes": "0000000000001"}, False),  # 13 characters
        ({"idleTimeoutInMinutes": "14x"}, False),
        ({"idleTimeoutInMinutes": True}, False),
        ({"idleTimeoutInMinutes": 1.5}, False),
        ({"activeAt": "yesterday"}, False),
        ({"activeAt": "2024-02-30T00:00:00Z"}, False),
        ({"userAgent": ""}, False),
        ({"userAgent": "x" * 2049}, False),
        ({"userAgent": "line\nbreak"}, False),
        ({"userAgent": "soft\u00adhyphen"}, False),
        ({"userAgent": "Émile/1.0 ☃"}, True),
        ({"token": "short"}, False),
        ({"token": "t" * 513}, False),
        ({"token": "tab\tinside-a-long-token"}, False),
        ({"token": None}, True),
        (signed_on(remoteIp="not an address"), False),
        (signed_on(remoteIp="2001:db8::1"), True),
        (signed_on(withAuthenticator={"": method()}), False),
        (signed_on(withAuthenticator={"pwd": method("soon")}), False),
        (signed_on(authenticators=["pwd"] * 17), False),
        ({"user": {"id": ""}}, False),
        # an anonymous session ignores its lastSignOn, as PingOne does
        ({"user": None, **signed_on(remoteIp="not an address")}, True),
    ],
)
def test_the_request_schema_refuses_what_the_facade_refuses(document, change, valid):
    body = {**seed_body("518818650203285930", secrets.token_urlsafe(24)), **change}
    assert component(document, "SessionIn").is_valid(body) is valid, change
    assert server_accepts(body) is valid, change


def test_the_printable_pattern_is_str_isprintable(document):
    validator = jsonschema_rs.validator_for(document["components"]["schemas"]["PrintableText"])
    for code in [*range(0x3000), *range(0xD7F0, 0xD800), *range(0xE000, 0x110000, 97)]:
        char = chr(code)
        assert validator.is_valid(f"a{char}b") is char.isprintable(), hex(code)


def test_idle_timeout_strings_match_the_facade_exactly(document):
    pattern = re.compile(
        document["components"]["schemas"]["SessionIn"]["properties"]["idleTimeoutInMinutes"][
            "pattern"
        ]
    )
    for text in [*map(str, range(200)), "0" * 11 + "1", "0" * 12, "5270400", "5270401"]:
        valid = bool(pattern.fullmatch(text))
        body = {"activeAt": "2024-01-01T00:00:00Z", "userAgent": "a", "idleTimeoutInMinutes": text}
        assert server_accepts(body) is valid, text


# -- against the running application -------------------------------------------------------
class Live:
    """The PingOne API of the running app, each answer checked against the document."""

    def __init__(
        self, client: TestClient[web.Request, web.Application], env_id: str, doc: dict[str, Any]
    ) -> None:
        self.client = client
        self.base = f"/v1/environments/{env_id}"
        self.doc = doc

    async def call(
        self, method: str, path: str, route: str, *, st: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """Send, then validate the body against the response the document names for it."""
        headers = {**BEARER, **kwargs.pop("headers", {})}
        if st is not None:
            headers["Cookie"] = f"ST={st}"
        response = await self.client.request(method, self.base + path, headers=headers, **kwargs)
        raw = await response.read()
        responses = operation(self.doc, method, route)["responses"]
        assert str(response.status) in responses, (method, path, response.status, raw)
        documented = responses[str(response.status)]
        if "content" not in documented:
            assert raw == b""
            return response.status, None
        [(content_type, media)] = documented["content"].items()
        assert response.content_type == content_type
        body = msgspec.json.decode(raw)
        name = media["schema"]["$ref"].rsplit("/", 1)[1]
        component(self.doc, name).validate(body)
        return response.status, body


@pytest.fixture(name="live")
def _live(
    client: TestClient[web.Request, web.Application], instance_id: str, document: dict[str, Any]
) -> Live:
    return Live(client, instance_id, document)


async def test_real_responses_match_the_document(live: Live, api: Api):
    user = await api.human()
    token = secrets.token_urlsafe(24)
    status, created = await live.call("POST", "/sessions", "/sessions", json=seed_body(user, token))
    assert status == 201, created
    assert created["idleTimeoutInMinutes"] == 144000
    session_id = created["id"]
    assert (await live.call("GET", f"/sessions/{session_id}", "/sessions/{sessionId}"))[0] == 200
    assert (await live.call("GET", "/sessions/me", "/sessions/me", st=token))[0] == 200
    status, listed = await live.call("GET", f"/users/{user}/sessions", "/users/{userId}/sessions")
    assert status == 200
    assert [s["id"] for s in listed["_embedded"]["sessions"]] == [session_id]
    one = "/users/{userId}/sessions/{sessionId}"
    assert (await live.call("GET", f"/users/{user}/sessions/{session_id}", one))[0] == 200
    replaced = {**seed_body(user, token), "idleTimeoutInMinutes": 30}
    status, updated = await live.call(
        "PUT", "/sessions/me", "/sessions/me", st=token, json=replaced
    )
    assert (status, updated["idleTimeoutInMinutes"]) == (200, 30)
    logout = {"Content-Type": pingone_wire.LOGOUT_CONTENT_TYPE}
    sign_off = await live.call("POST", "/sessions/me", "/sessions/me", st=token, headers=logout)
    assert sign_off == (204, None)
    assert (await live.call("DELETE", f"/users/{user}/sessions/{session_id}", one)) == (204, None)
    assert (await live.call("GET", f"/sessions/{session_id}", "/sessions/{sessionId}"))[0] == 404


async def test_real_errors_match_the_document(live: Live, api: Api):
    user = await api.human()
    token = secrets.token_urlsafe(24)
    assert (await live.call("POST", "/sessions", "/sessions", json=seed_body(user, token)))[
        0
    ] == 201
    status, error = await live.call("GET", "/sessions/me", "/sessions/me")
    assert (status, error["details"][0]["target"]) == (400, "Cookie.ST")
    wrong = {"Content-Type": "application/json"}
    status, _ = await live.call("POST", "/sessions/me", "/sessions/me", st=token, headers=wrong)
    assert status == 415
    status, error = await live.call(
        "POST", "/sessions", "/sessions", json={**seed_body(user, token), "activeAt": "never"}
    )
    assert (status, error["details"][0]["target"]) == (400, "activeAt")
    assert (await live.call("GET", "/sessions/123", "/sessions/{sessionId}"))[0] == 404
    deleted = await live.call(
        "DELETE", f"/users/{user}/sessions", "/users/{userId}/sessions", params={"except": ""}
    )
    assert deleted == (204, None)
    assert (await live.call("DELETE", "/sessions/me", "/sessions/me", st=token))[0] == 404
    live.base = "/v1/environments/another"
    assert (await live.call("GET", "/sessions/me", "/sessions/me", st=token))[0] == 404
    status, _ = await live.call(
        "GET", "/sessions/me", "/sessions/me", headers={"Authorization": ""}
    )
    assert status == 401


async def test_the_served_document_is_this_one(client, document):
    response = await client.get("/openapi.json")
    served = await response.json()
    assert served == msgspec.json.decode(msgspec.json.encode(document))
