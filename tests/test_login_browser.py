"""The demo login page in a real browser: password, passkey registration, passkey sign-in.

Debian's Chromium runs headless, driven over CDP (tests/browser.py), with a CDP virtual
authenticator (CTAP2, internal, resident keys, user verification, presence simulated). The
service runs as a real process with the page on; the page is opened on ``localhost`` (a
secure context; WebAuthn refuses IP addresses as RP ids). What the page claims is checked
against the API with the admin token. A missing browser fails the test.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.browser import Tab, chromium
from tests.processes import Server, free_port, server
from tests.support import ADMIN_TOKEN, PASSWORD

pytestmark = pytest.mark.slow
OUTPUT = Path(__file__).resolve().parent.parent / "build" / "test-output"


@pytest.fixture(name="service", scope="module")
def _service(redis_url: str) -> Iterator[tuple[Server, str]]:
    """The service with the page on; yields it and the page's origin on localhost."""
    port = free_port()
    origin = f"http://localhost:{port}"
    with server(redis_url, http_port=port, demo_login="true", webauthn_origins=origin) as running:
        yield running, origin


@pytest.fixture(name="admin")
async def _admin(service: tuple[Server, str]) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(service[0].url, headers=headers) as http:
        yield http


async def _call(http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
    async with http.request(method, path, json=body) as response:
        payload = await response.json()
        assert response.status < 300, (method, path, response.status, payload)
        return payload


async def _new_user(admin: aiohttp.ClientSession) -> tuple[str, str]:
    username = f"browser-{secrets.token_hex(4)}"
    body = {
        "username": username,
        "profile": {"givenName": "Brow", "familyName": "Ser"},
        "email": {"email": f"{username}@example.com", "isVerified": True},
        "password": {"password": PASSWORD},
    }
    created = await _call(admin, "POST", "/v2/users/human", body)
    return str(created["userId"]), username


async def _at(tab: Tab, step: str) -> None:
    """Wait until the page shows ``step`` and is idle; a shown error fails at once."""
    condition = (
        "(() => { const b = document.body; if (!b || b.dataset.busy !== 'false') return false;"
        " const e = document.getElementById('error');"
        " if (e && !e.hidden) return 'error: ' + e.textContent;"
        f" return b.dataset.step === {json.dumps(step)} ? 'ok' : false; }})()"
    )
    state = await tab.wait_for(condition)
    shown = await tab.evaluate("document.body.dataset.step")
    assert state == "ok", f"waiting for {step}, the page shows {shown}: {state}"


async def _fill(tab: Tab, selector: str, value: str) -> None:
    await tab.evaluate(
        f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}"
    )


async def _text(tab: Tab, element_id: str) -> str:
    return str(await tab.evaluate(f"document.getElementById({json.dumps(element_id)}).textContent"))


async def _submit(tab: Tab, form: str) -> None:
    await tab.evaluate(f"document.querySelector({json.dumps(form)}).requestSubmit()")


async def _click(tab: Tab, selector: str) -> None:
    await tab.evaluate(f"document.querySelector({json.dumps(selector)}).click()")


async def _password_sign_in(tab: Tab, username: str) -> None:
    await _at(tab, "loginName")
    await _fill(tab, "#login-name", username)
    await _submit(tab, "#login-name-form")
    await _at(tab, "password")
    await _fill(tab, "#password", PASSWORD)
    await _submit(tab, "#password-form")


async def _the_session(admin: aiohttp.ClientSession, user_id: str) -> dict[str, Any]:
    """The user's only session (the earlier one was deleted by signing out)."""
    found = await _call(
        admin, "POST", "/v2/sessions/search", {"queries": [{"userIdQuery": {"id": user_id}}]}
    )
    sessions = found.get("sessions") or []
    assert len(sessions) == 1, sessions
    return dict(sessions[0])


async def test_password_then_passkey_registration_then_passkey_sign_in(
    service: tuple[Server, str], admin: aiohttp.ClientSession
) -> None:
    _, origin = service
    user_id, username = await _new_user(admin)
    async with chromium() as tab:
        authenticator = await tab.add_virtual_authenticator()
        await tab.navigate(f"{origin}/login")

        await _password_sign_in(tab, username)
        await _at(tab, "signedIn")

        await _fill(tab, "#passkey-name", "browser key")
        await _submit(tab, "#passkey-form")
        await tab.wait_for("document.body.dataset.busy === 'false'")
        assert "registered" in await _text(tab, "message"), await _text(tab, "error")
        # a ready passkey makes the password alone too little (MFA): the page asks for it
        assert await tab.evaluate("document.body.dataset.step") == "secondFactor"
        held = await tab.credentials(authenticator)
        assert len(held) == 1
        assert held[0]["isResidentCredential"] is True
        assert held[0]["rpId"] == "localhost"

        await _click(tab, "[data-view]:not([hidden]) .sign-out")
        await _at(tab, "loginName")

        await _password_sign_in(tab, username)
        await _at(tab, "secondFactor")
        await _click(tab, "#passkey-second")
        await _at(tab, "signedIn")

        kinds = await tab.evaluate("document.querySelector('#factors tbody').dataset.kinds")
        assert kinds.split() == ["user", "password", "webAuthN"]
        assert "browser key" in await _text(tab, "passkeys")
        await tab.screenshot(OUTPUT / "login-signed-in.png")

        session_cookie = next(c for c in await tab.cookies() if c["name"] == "sessiond_login")
        assert session_cookie["httpOnly"] is True
        assert session_cookie["sameSite"] == "Strict"
        assert session_cookie["path"] == "/login"
        assert await tab.evaluate("document.cookie") == ""  # nothing readable by script
        problems = tab.problems()

    listed = await _the_session(admin, user_id)  # the signed-out session is deleted
    session_id = session_cookie["value"].partition(":")[0]
    assert listed["id"] == session_id
    factors = (await _call(admin, "GET", f"/v2/sessions/{session_id}"))["session"]["factors"]
    assert factors["user"]["id"] == user_id
    assert factors["password"]["verifiedAt"]
    assert factors["webAuthN"]["verifiedAt"]
    assert factors["webAuthN"]["userVerified"] is True
    assert problems == []


async def test_a_passkey_alone_signs_in_without_the_password(
    service: tuple[Server, str], admin: aiohttp.ClientSession
) -> None:
    _, origin = service
    user_id, username = await _new_user(admin)
    async with chromium() as tab:
        await tab.add_virtual_authenticator()
        await tab.navigate(f"{origin}/login")
        await _password_sign_in(tab, username)
        await _at(tab, "signedIn")
        await _submit(tab, "#passkey-form")
        await _at(tab, "secondFactor")
        await _click(tab, "[data-view]:not([hidden]) .sign-out")

        await _at(tab, "loginName")
        await _fill(tab, "#login-name", username)
        await _submit(tab, "#login-name-form")
        await _at(tab, "password")
        await _click(tab, "#passkey-instead")
        await _at(tab, "signedIn")
        problems = tab.problems()

    factors = (await _the_session(admin, user_id))["factors"]
    assert "password" not in factors
    assert factors["webAuthN"]["userVerified"] is True
    assert problems == []
