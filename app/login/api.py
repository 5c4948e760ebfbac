"""The session and user API as the login page's backend sees it: JSON over HTTP to this server.

The backend-for-frontend is an API client like any other login UI: it never reaches into the
services, so the page exercises the same wire contract (and the same bearer rules) that a
ZITADEL login would. Bearers are passed per call and never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec
from structlog.contextvars import get_contextvars

#: How long one API call may take before the page reports the service as unavailable.
CALL_TIMEOUT_S = 15.0
_JSON = msgspec.json.Decoder()


class ApiError(Exception):
    """A non-2xx answer of the API: its status, gRPC code, error id and readable message."""

    def __init__(self, status: int, code: int, error_id: str, message: str) -> None:
        super().__init__(f"{status} {error_id or code}")
        self.status = status
        self.code = code
        self.error_id = error_id
        self.message = message


def _error(status: int, body: Any) -> ApiError:
    if not isinstance(body, dict):
        return ApiError(status, 0, "", "")
    details = body.get("details") or [{}]
    first = details[0] if isinstance(details, list) and isinstance(details[0], dict) else {}
    code = body.get("code")
    return ApiError(
        status,
        code if isinstance(code, int) else 0,
        str(first.get("id", "")),
        str(first.get("message") or body.get("message") or ""),
    )


def _segment(value: str) -> str:
    return quote(value, safe="")


class Api:
    """One method per RPC the page uses; ``pat`` gives the login client's current PAT."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, pat: Callable[[], str]) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self._pat = pat

    async def call(
        self, method: str, path: str, body: Any = None, *, bearer: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {bearer or self._pat()}"}
        request_id = get_contextvars().get("request_id")
        if isinstance(request_id, str):  # one id in the log for the page's call and the API's
            headers["X-Request-Id"] = request_id
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = msgspec.json.encode(body)
        async with self._http.request(
            method,
            self._base + path,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=CALL_TIMEOUT_S),
        ) as response:
            raw = await response.read()
            try:
                payload = _JSON.decode(raw) if raw else {}
            except msgspec.DecodeError:  # not the API answering (a proxy's error page)
                payload = {}
            if response.status >= 300:
                raise _error(response.status, payload)
            return payload if isinstance(payload, dict) else {}

    # -- sessions ---------------------------------------------------------------------------
    async def create_session(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("POST", "/v2/sessions", body)

    async def set_session(self, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.call("PATCH", f"/v2/sessions/{_segment(session_id)}", body)

    async def get_session(self, session_id: str) -> dict[str, Any]:
        reply = await self.call("GET", f"/v2/sessions/{_segment(session_id)}")
        session = reply.get("session")
        return session if isinstance(session, dict) else {}

    async def delete_session(self, session_id: str) -> None:
        await self.call("DELETE", f"/v2/sessions/{_segment(session_id)}", {})

    # -- users ------------------------------------------------------------------------------
    async def authentication_methods(self, user_id: str) -> frozenset[str]:
        reply = await self.call("GET", f"/v2/users/{_segment(user_id)}/authentication_methods")
        return frozenset(str(kind) for kind in reply.get("authMethodTypes") or ())

    async def list_passkeys(self, user_id: str) -> list[dict[str, Any]]:
        reply = await self.call("POST", f"/v2/users/{_segment(user_id)}/passkeys/_search", {})
        return [item for item in reply.get("result") or () if isinstance(item, dict)]

    async def register_passkey(
        self, user_id: str, domain: str, *, session_token: str
    ) -> dict[str, Any]:
        body = {"authenticator": "PASSKEY_AUTHENTICATOR_UNSPECIFIED", "domain": domain}
        path = f"/v2/users/{_segment(user_id)}/passkeys"
        return await self.call("POST", path, body, bearer=session_token)

    async def verify_passkey(
        self,
        user_id: str,
        passkey_id: str,
        credential: dict[str, Any],
        name: str,
        *,
        session_token: str,
    ) -> None:
        path = f"/v2/users/{_segment(user_id)}/passkeys/{_segment(passkey_id)}"
        body = {"publicKeyCredential": credential, "passkeyName": name}
        await self.call("POST", path, body, bearer=session_token)
