"""Helpers for API tests: a client that speaks the service's JSON, and actors to call it as."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from storage import keys

ADMIN_TOKEN = "admin-" + "x" * 40
#: The suite's master key (base64 of 32 bytes); only test data is ever sealed with it.
MASTER_KEY = "dGVzdC1tYXN0ZXIta2V5LW9mLXRoZS1zdWl0ZSEhISE="
PASSWORD = "Corr3ct-Horse!"
#: The WebAuthn relying party of the suite: the origin its authenticators sign for.
RP_ID = "login.example.com"
WEBAUTHN_ORIGIN = f"https://{RP_ID}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class Reply:
    status: int
    body: dict[str, Any]

    @property
    def error_id(self) -> str:
        details = self.body.get("details") or [{}]
        return str(details[0].get("id", ""))


class Api:
    """Thin JSON client: every call names the bearer it uses."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    async def call(
        self, method: str, path: str, token: str = ADMIN_TOKEN, body: Any = None, **query: str
    ) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.request(
            method, path, json=body, headers=headers, params=query or None
        )
        payload = await response.json() if response.content_length != 0 else {}
        return Reply(response.status, payload)

    # -- users -----------------------------------------------------------------------------
    async def human(
        self,
        username: str | None = None,
        *,
        password: str | None = PASSWORD,
        org_id: str | None = None,
    ) -> str:
        username = username or f"user-{secrets.token_hex(4)}"
        body: dict[str, Any] = {
            "username": username,
            "profile": {"givenName": "Given", "familyName": username},
            "email": {"email": f"{username}@example.com", "isVerified": True},
        }
        if password is not None:
            body["password"] = {"password": password}
        if org_id is not None:
            body["organization"] = {"orgId": org_id}
        reply = await self.call("POST", "/v2/users/human", body=body)
        assert reply.status == 201, reply.body
        return str(reply.body["userId"])

    async def machine_with_pat(
        self, roles: list[str], org_id: str | None = None
    ) -> tuple[str, str]:
        body: dict[str, Any] = {
            "username": f"svc-{secrets.token_hex(4)}",
            "machine": {"name": "service"},
        }
        if org_id is not None:
            body["organizationId"] = org_id
        reply = await self.call("POST", "/v2/users/new", body=body)
        assert reply.status in (200, 201), reply.body
        user_id = str(reply.body["id"])
        if roles:
            await self.grant(user_id, roles, org_id)
        pat = await self.call("POST", f"/v2/users/{user_id}/pats", body={})
        assert pat.status in (200, 201), pat.body
        return user_id, str(pat.body["token"])

    async def grant(self, user_id: str, roles: list[str], org_id: str | None = None) -> None:
        resource: dict[str, Any] = {"organizationId": org_id} if org_id else {"instance": True}
        reply = await self.call(
            "POST",
            "/v2/administrators",
            body={"userId": user_id, "resource": resource, "roles": roles},
        )
        assert reply.status in (200, 201), reply.body

    async def org(self, name: str | None = None) -> str:
        reply = await self.call(
            "POST", "/v2/organizations", body={"name": name or f"org-{secrets.token_hex(4)}"}
        )
        assert reply.status in (200, 201), reply.body
        return str(reply.body["organizationId"])

    # -- sessions --------------------------------------------------------------------------
    async def create(
        self,
        body: dict[str, Any] | None = None,
        token: str = ADMIN_TOKEN,
    ) -> Reply:
        return await self.call("POST", "/v2/sessions", token, body or {})

    async def session_for(self, user_id: str, token: str = ADMIN_TOKEN, **extra: Any) -> Reply:
        body = {
            "checks": {"user": {"userId": user_id}, "password": {"password": PASSWORD}},
            **extra,
        }
        reply = await self.create(body, token)
        assert reply.status == 201, reply.body
        return reply

    async def get(self, session_id: str, token: str = ADMIN_TOKEN, **query: str) -> Reply:
        return await self.call("GET", f"/v2/sessions/{session_id}", token, **query)

    async def set(
        self,
        session_id: str,
        body: dict[str, Any],
        token: str = ADMIN_TOKEN,
    ) -> Reply:
        return await self.call("PATCH", f"/v2/sessions/{session_id}", token, body)

    async def delete(
        self, session_id: str, token: str = ADMIN_TOKEN, body: dict[str, Any] | None = None
    ) -> Reply:
        return await self.call("DELETE", f"/v2/sessions/{session_id}", token, body)

    async def search(self, body: dict[str, Any], token: str = ADMIN_TOKEN) -> Reply:
        return await self.call("POST", "/v2/sessions/search", token, body)


async def session_history(redis: Any, session_id: str, partitions: int = 16) -> list[Any]:
    """One session's events in order: its partition stream, filtered by aggregate id."""
    stream = keys.event_stream(keys.event_partition(session_id, partitions))
    mine = session_id.encode()
    return [fields for _, fields in await redis.xrange(stream) if fields[b"aggregateId"] == mine]
