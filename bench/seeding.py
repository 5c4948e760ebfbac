"""Test data for the session scenarios, created over the service's own HTTP API.

Everything goes through ``POST /v2/users/human``, ``POST /v2/sessions`` and PingOne's
``POST /v1/environments/{env}/sessions`` with the admin PAT: the benchmark never writes the
service's keys itself. Every call has a timeout.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import msgspec

PASSWORD = "Bench-Passw0rd!"
#: metadata values are bytes on the wire: base64 of b"bench-value"
METADATA_VALUE_B64 = "YmVuY2gtdmFsdWU="
#: The seed's PingOne "Create Session" example: its browser, address and sign-on policy.
PINGONE_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:103.0) Gecko/20100101 Firefox/103.0"
)
PINGONE_REMOTE_IP = "174.1.62.19"
PINGONE_POLICY_ID = "874d5c7d-5e1c-4e73-b2b5-dfe1453b02f5"
T = TypeVar("T")


class SeedError(RuntimeError):
    """The service refused or failed a seeding call."""


def pingone_body(user_id: str, token: str, at: str) -> dict[str, Any]:
    """The seed's create body: user ``user_id`` signed on with a password at ``at`` (ISO)."""
    return {
        "activeAt": at,
        "idleTimeoutInMinutes": "144000",
        "lastSignOn": {
            "authenticators": ["pwd"],
            "remoteIp": PINGONE_REMOTE_IP,
            "withAuthenticator": {
                "pwd": {"at": at, "policy": {"id": PINGONE_POLICY_ID, "type": "PINGONE"}}
            },
        },
        "token": token,
        "user": {"id": user_id},
        "userAgent": PINGONE_USER_AGENT,
    }


def admin_token() -> str:
    """A PAT of the service's shape ``p.<tokenId>.<secret>`` (32 random bytes, base64url)."""
    return f"p.benchadmin.{secrets.token_urlsafe(32)}"


class Api:
    """A thin JSON client for the calls the benchmark needs (loopback only)."""

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        if not base_url.startswith("http://127.0.0.1:"):
            raise ValueError(f"loopback only: {base_url}")
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        connector = aiohttp.TCPConnector(limit=64)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        expect: tuple[int, ...] = (200, 201),
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        if self._session is None:
            raise RuntimeError("use Api as an async context manager")
        data = msgspec.json.encode(body) if body is not None else None
        sent = {**self.headers, **headers} if headers else self.headers
        async with self._session.request(
            method, self.base_url + path, data=data, headers=sent
        ) as response:
            payload = await response.read()
            if response.status not in expect:
                raise SeedError(
                    f"{method} {path} -> {response.status}: "
                    f"{payload[:500].decode(errors='replace')}"
                )
        decoded = msgspec.json.decode(payload) if payload else {}
        if not isinstance(decoded, dict):
            raise SeedError(f"{method} {path}: not a JSON object: {payload[:200]!r}")
        return decoded

    async def create_user(self, username: str, *, password: str | None = PASSWORD) -> str:
        body: dict[str, Any] = {
            "username": username,
            "profile": {"givenName": "B", "familyName": "U"},
            "email": {"email": f"{username}@example.com", "isVerified": True},
        }
        if password is not None:
            body["password"] = {"password": password}
        reply = await self.call("POST", "/v2/users/human", body)
        user_id = reply.get("userId")
        if not isinstance(user_id, str) or not user_id:
            raise SeedError(f"AddHumanUser answered without userId: {reply}")
        return user_id

    async def create_factor_user(
        self, username: str, *, totp_secret: str | None = None, otp_email: bool = False
    ) -> str:
        """A user without a password whose second factors are ready at once.

        ``totp_secret`` (base32) is imported with ``AddHumanUser``, which makes TOTP ready
        without a registration step; ``otp_email`` adds OTP e-mail to the verified address.
        """
        body: dict[str, Any] = {
            "username": username,
            "profile": {"givenName": "B", "familyName": "F"},
            "email": {"email": f"{username}@example.com", "isVerified": True},
        }
        if totp_secret is not None:
            body["totpSecret"] = totp_secret
        reply = await self.call("POST", "/v2/users/human", body)
        user_id = reply.get("userId")
        if not isinstance(user_id, str) or not user_id:
            raise SeedError(f"AddHumanUser answered without userId: {reply}")
        if otp_email:
            await self.call("POST", f"/v2/users/{user_id}/otp_email", {})
        return user_id

    async def create_session(self, user_id: str) -> str:
        reply = await self.call("POST", "/v2/sessions", {"checks": {"user": {"userId": user_id}}})
        session_id = reply.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise SeedError(f"CreateSession answered without sessionId: {reply}")
        return session_id

    async def create_sessions(
        self, user_id: str, count: int, *, concurrency: int = 32
    ) -> list[str]:
        """``count`` sessions of ``user_id``, ``concurrency`` requests in flight."""
        ids: list[str] = []
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < count:
                next_index += 1
                ids.append(await self.create_session(user_id))

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
        return ids

    async def create_pingone_session(self, env_id: str, body: Mapping[str, Any]) -> str:
        """PingOne's create (201); the new session's id."""
        reply = await self.call("POST", f"/v1/environments/{env_id}/sessions", body, expect=(201,))
        session_id = reply.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise SeedError(f"PingOne create answered without id: {str(reply)[:300]}")
        return session_id

    async def pingone_me(self, env_id: str, token: str) -> str:
        """The id of the session ``GET /sessions/me`` answers for the ``ST`` cookie ``token``."""
        reply = await self.call(
            "GET",
            f"/v1/environments/{env_id}/sessions/me",
            expect=(200,),
            headers={"Cookie": f"ST={token}"},
        )
        return str(reply.get("id", ""))

    async def search_user_sessions(self, user_id: str) -> list[Any]:
        reply = await self.call(
            "POST", "/v2/sessions/search", {"queries": [{"userIdQuery": {"id": user_id}}]}
        )
        sessions = reply.get("sessions", [])
        if not isinstance(sessions, list):
            raise SeedError(f"ListSessions: sessions is not a list: {str(reply)[:300]}")
        return sessions


async def bounded_map(
    count: int, make: Callable[[int], Awaitable[T]], *, concurrency: int = 32
) -> list[T]:
    """``[await make(0), ..., await make(count - 1)]`` with ``concurrency`` calls in flight."""
    results: list[T | None] = [None] * count
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            results[index] = await make(index)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))
    done = [r for r in results if r is not None]
    if len(done) != count:
        raise SeedError(f"bounded_map: {count - len(done)} of {count} calls gave nothing")
    return done
