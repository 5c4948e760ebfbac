"""The login page's backend-for-frontend without a browser: headers, CSRF, cookies, secrets.

A real service process serves the page; a plain aiohttp client plays the browser (cookie
jar, Origin and the CSRF header). What a browser receives must never hold a token.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from actors.delivery import OUTBOX_PURPOSE, Message
from app.services.sealing import Keyring
from storage import keys
from storage.outbox import job_from_fields
from tests.processes import Server, free_port, server
from tests.redis_server import inspecting_client
from tests.support import ADMIN_TOKEN, MASTER_KEY, PASSWORD

pytestmark = pytest.mark.slow
CSP_DIRECTIVES = (
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
)
#: A PAT (``p.<id>.<secret>``) or a session token (``s.<sessionId>.<secret>``).
TOKEN_SHAPE = re.compile(r"\b[ps]\.[0-9A-Za-z]+\.[A-Za-z0-9_-]{20,}")


@pytest.fixture(name="service", scope="module")
def _service(redis_url: str) -> Iterator[Server]:
    port = free_port()
    origin = f"http://localhost:{port}"
    with server(redis_url, http_port=port, demo_login="true", webauthn_origins=origin) as running:
        yield running


@dataclass
class Browser:
    """A cookie jar, the page's CSRF token and every body the 'browser' was sent."""

    http: aiohttp.ClientSession
    origin: str
    csrf: str = ""
    bodies: list[str] = field(default_factory=list)

    async def open_page(self) -> aiohttp.ClientResponse:
        async with self.http.get("/login") as response:
            text = await response.text()
        self.bodies.append(text)
        found = re.search(r'<meta name="csrf-token" content="([^"]+)">', text)
        assert found is not None
        self.csrf = found.group(1)
        return response

    async def post(
        self, step: str, body: Any = None, **headers: str
    ) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
        sent = {"Origin": self.origin, "X-CSRF-Token": self.csrf, **headers}
        async with self.http.post(f"/login/api/{step}", json=body or {}, headers=sent) as response:
            text = await response.text()
            self.bodies.append(text)
            return response.status, await response.json(), response


@pytest.fixture(name="browser")
async def _browser(service: Server) -> AsyncIterator[Browser]:
    jar = aiohttp.CookieJar(unsafe=True)  # the service is on 127.0.0.1
    async with aiohttp.ClientSession(service.url, cookie_jar=jar) as http:
        yield Browser(http, f"http://127.0.0.1:{service.port}")


async def _human(service: Server) -> tuple[str, str]:
    username = f"bff-{secrets.token_hex(4)}"
    body = {
        "username": username,
        "profile": {"givenName": "Bee", "familyName": "Eff"},
        "email": {"email": f"{username}@example.com", "isVerified": True},
        "password": {"password": PASSWORD},
    }
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession(service.url, headers=headers) as http,
        http.post("/v2/users/human", json=body) as response,
    ):
        assert response.status == 201
        return str((await response.json())["userId"]), username


def _set_cookies(response: aiohttp.ClientResponse) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookie.load(header)
    return cookie


def _assert_strict(cookie: SimpleCookie, name: str) -> None:
    morsel = cookie[name]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/login"
    assert not morsel["secure"]  # plain http here; https origins get Secure (test below)


class TestSwitch:
    """First in the module: the ``client`` fixture empties Redis, which the service uses."""

    async def test_the_page_is_not_found_when_demo_login_is_off(
        self, client: TestClient[web.Request, web.Application]
    ) -> None:
        for method, path in (("GET", "/login"), ("POST", "/login/api/state")):
            response = await client.request(method, path, json={})
            assert response.status == 404, path
        response = await client.get("/login/static/login.js")
        assert response.status == 404

    @pytest.mark.settings(demo_login="true")
    async def test_cookies_are_secure_when_the_origin_is_https(
        self, client: TestClient[web.Request, web.Application]
    ) -> None:
        response = await client.get("/login")
        assert response.status == 200
        cookie = _set_cookies(response)
        assert cookie["sessiond_login_csrf"]["secure"] is True
        assert cookie["sessiond_login_csrf"]["httponly"] is True


class TestHeaders:
    async def test_the_page_has_a_strict_csp_and_no_caching(self, browser: Browser) -> None:
        response = await browser.open_page()
        assert response.status == 200
        csp = response.headers["Content-Security-Policy"]
        for directive in CSP_DIRECTIVES:
            assert directive in csp
        assert "unsafe" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"

    async def test_the_csrf_cookie_is_http_only_strict_and_matches_the_page(
        self, browser: Browser
    ) -> None:
        response = await browser.open_page()
        cookie = _set_cookies(response)
        _assert_strict(cookie, "sessiond_login_csrf")
        assert cookie["sessiond_login_csrf"].value == browser.csrf

    async def test_the_module_is_served_as_javascript_with_the_same_headers(
        self, browser: Browser
    ) -> None:
        async with browser.http.get("/login/static/login.js") as response:
            assert response.status == 200
            assert response.content_type in ("text/javascript", "application/javascript")
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]

    async def test_api_answers_are_not_stored(self, browser: Browser) -> None:
        await browser.open_page()
        status, body, response = await browser.post("state")
        assert (status, body) == (200, {"step": "loginName"})
        assert response.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


class TestCsrf:
    @pytest.mark.parametrize(
        "headers",
        [
            {"X-CSRF-Token": ""},
            {"X-CSRF-Token": "wrong-" + "x" * 40},
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": ""},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ],
        ids=[
            "no-token",
            "wrong-token",
            "foreign-origin",
            "null-origin",
            "no-origin",
            "cross-site",
            "same-site",
        ],
    )
    async def test_a_request_failing_a_check_is_refused(
        self, browser: Browser, headers: dict[str, str]
    ) -> None:
        await browser.open_page()
        status, body, _ = await browser.post("state", **headers)
        assert status == 403
        assert body["error"].startswith("Request refused")

    async def test_a_form_post_is_refused(self, browser: Browser) -> None:
        await browser.open_page()
        headers = {"Origin": browser.origin, "X-CSRF-Token": browser.csrf}
        async with browser.http.post(
            "/login/api/start", data={"loginName": "x"}, headers=headers
        ) as response:
            assert response.status == 403

    async def test_without_the_cookie_the_header_alone_is_refused(self, browser: Browser) -> None:
        await browser.open_page()
        browser.http.cookie_jar.clear()
        status, _, _ = await browser.post("state")
        assert status == 403

    async def test_the_configured_origin_is_accepted(
        self, browser: Browser, service: Server
    ) -> None:
        await browser.open_page()
        status, _, _ = await browser.post("state", Origin=f"http://localhost:{service.port}")
        assert status == 200


class TestSignIn:
    async def test_password_sign_in_and_sign_out_never_show_a_token(
        self, browser: Browser, service: Server
    ) -> None:
        _, username = await _human(service)
        await browser.open_page()
        status, body, response = await browser.post("start", {"loginName": username})
        assert (status, body["step"]) == (200, "password")
        cookie = _set_cookies(response)
        _assert_strict(cookie, "sessiond_login")
        session_id, _, token = cookie["sessiond_login"].value.partition(":")

        status, body, _ = await browser.post("password", {"password": PASSWORD})
        assert (status, body["step"]) == (200, "signedIn")
        assert [f["kind"] for f in body["factors"]] == ["user", "password"]
        assert body["user"]["loginName"] == username

        status, body, response = await browser.post("logout")
        assert (status, body) == (200, {"step": "loginName"})
        assert _set_cookies(response)["sessiond_login"].value == ""
        assert await _admin_get(service, session_id) == 404

        for text in browser.bodies:
            assert token not in text
            assert TOKEN_SHAPE.search(text) is None, text
            assert "sessionToken" not in text

    async def test_a_wrong_password_is_a_readable_error(
        self, browser: Browser, service: Server
    ) -> None:
        _, username = await _human(service)
        await browser.open_page()
        await browser.post("start", {"loginName": username})
        status, body, _ = await browser.post("password", {"password": "not-" + PASSWORD})
        assert status == 400
        assert body["error"] == "Password is invalid"

    async def test_an_unknown_login_name_is_a_readable_error(self, browser: Browser) -> None:
        await browser.open_page()
        status, body, _ = await browser.post("start", {"loginName": "nobody-" + "x" * 8})
        assert status == 404
        assert body["error"] == "User could not be found"

    async def test_a_step_without_a_session_asks_for_the_login_name(self, browser: Browser) -> None:
        await browser.open_page()
        status, body, _ = await browser.post("password", {"password": PASSWORD})
        assert status == 400
        assert "login name" in body["error"]

    async def test_a_bad_body_is_refused_with_a_message(self, browser: Browser) -> None:
        await browser.open_page()
        status, body, _ = await browser.post("start", {"loginName": "", "extra": 1})
        assert status == 400
        assert body["error"].startswith("Invalid request")


async def _admin_get(service: Server, session_id: str) -> int:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession(service.url, headers=headers) as http,
        http.get(f"/v2/sessions/{session_id}") as response,
    ):
        return response.status


_AT = {"verifiedAt": "2026-01-01T00:00:00Z"}
_PW = "AUTHENTICATION_METHOD_TYPE_PASSWORD"
_PASSKEY = "AUTHENTICATION_METHOD_TYPE_PASSKEY"
_TOTP = "AUTHENTICATION_METHOD_TYPE_TOTP"


class TestSteps:
    @pytest.mark.parametrize(
        ("factors", "methods", "expected"),
        [
            ({}, {_PW}, ("loginName", [])),
            ({"user": _AT}, {_PW}, ("password", [])),
            ({"user": _AT}, {_PW, _PASSKEY}, ("password", ["passkey"])),
            ({"user": _AT}, {_PASSKEY}, ("passkey", [])),
            ({"user": _AT}, set(), ("unsupported", [])),
            ({"user": _AT, "password": _AT}, {_PW}, ("signedIn", [])),
            (
                {"user": _AT, "password": _AT},
                {_PW, _PASSKEY, _TOTP},
                ("secondFactor", ["passkey", "totp"]),
            ),
            ({"user": _AT, "password": _AT, "totp": _AT}, {_PW, _TOTP}, ("signedIn", [])),
            (
                {"user": _AT, "webAuthN": {**_AT, "userVerified": True}},
                {_PW, _PASSKEY},
                ("signedIn", []),
            ),
            (
                {"user": _AT, "webAuthN": {**_AT, "userVerified": False}},
                {_PW, _PASSKEY},
                ("password", ["passkey"]),
            ),
        ],
    )
    def test_the_next_step_follows_the_bearer_rule(
        self, factors: dict[str, Any], methods: set[str], expected: tuple[str, list[str]]
    ) -> None:
        from app.login.steps import next_step

        assert next_step(factors, frozenset(methods)) == expected

    async def test_a_user_without_password_or_passkey_cannot_go_on(self, browser: Browser) -> None:
        await browser.open_page()
        status, body, _ = await browser.post("start", {"loginName": "login-client"})
        assert (status, body["step"]) == (200, "unsupported")

    @pytest.mark.parametrize(
        ("expiration", "expired"),
        [("2000-01-01T00:00:00Z", True), ("2999-01-01T00:00:00.123Z", False), ("", False)],
    )
    def test_an_expired_session_counts_as_signed_out(self, expiration: str, expired: bool) -> None:
        from app.login.views import _expired

        assert _expired({"expirationDate": expiration}) is expired


async def _mailed_code(redis_url: str) -> str:
    """The code of the newest OTP e-mail in the outbox, opened as the delivery worker would."""
    connection = inspecting_client(redis_url)
    try:
        entries: Any = await connection.xrevrange(keys.OUTBOX, count=20)
    finally:
        await connection.aclose()
    for _, fields in entries:
        job = job_from_fields(fields)
        if job.template == "otp_email":
            sealed = Keyring.from_text(MASTER_KEY).open(OUTBOX_PURPOSE, job.sealed)
            return msgspec.json.decode(sealed, type=Message).code
    raise AssertionError("no OTP e-mail in the outbox")


async def test_an_email_code_is_sent_to_the_user_never_to_the_page_and_signs_in(
    redis_url: str,
) -> None:
    """Password, then the second factor the user has: an OTP by e-mail, delivered by the
    outbox (an SMTP host is configured; no worker runs, the test opens the queued job)."""
    port = free_port()
    origin = f"http://localhost:{port}"
    with server(
        redis_url, http_port=port, demo_login="true", webauthn_origins=origin, smtp_host="127.0.0.1"
    ) as running:
        user_id, username = await _human(running)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with (
            aiohttp.ClientSession(running.url, headers=headers) as admin,
            admin.post(f"/v2/users/{user_id}/otp_email", json={}) as added,
        ):
            assert added.status == 200
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(running.url, cookie_jar=jar) as http:
            browser = Browser(http, f"http://127.0.0.1:{running.port}")
            await browser.open_page()
            await browser.post("start", {"loginName": username})
            status, after_password, _ = await browser.post("password", {"password": PASSWORD})
            assert (status, after_password["step"]) == (200, "secondFactor")
            assert "otpEmail" in after_password["options"]

            status, sent, _ = await browser.post("otp/send", {"channel": "otpEmail"})
            assert (status, sent) == (200, {"sent": "otpEmail"})
            code = await _mailed_code(redis_url)
            assert code not in "".join(browser.bodies)

            wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
            status, refused, _ = await browser.post(
                "otp/check", {"channel": "otpEmail", "code": wrong}
            )
            assert status == 400, refused
            status, signed_in, _ = await browser.post(
                "otp/check", {"channel": "otpEmail", "code": code}
            )
            assert (status, signed_in["step"]) == (200, "signedIn"), signed_in
            kinds = {factor["kind"] for factor in signed_in["factors"]}
            assert kinds == {"user", "password", "otpEmail"}
            assert not TOKEN_SHAPE.search("".join(browser.bodies))
