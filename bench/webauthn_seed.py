"""Seeding for the WebAuthn benchmark: passkey users, challenged sessions, their assertions.

Everything a timed request needs is prepared here, outside the measured loop: a few users
each register a passkey (real registration ceremony through the API), then every session
of the pool is created with a user check and a REQUIRED WebAuthn challenge, and the
software authenticator signs that challenge. The timed request is then one SetSession
carrying the assertion. The credentials keep their counter at 0 (as many passkey providers
do), so sessions of one user may be checked in any order.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import msgspec
from seeding import Api, SeedError, bounded_map

# The suite's software authenticator signs for the benchmark too (bench/ is run as scripts).
sys.path.append(str(Path(__file__).resolve().parent.parent))
from tests.webauthn_authenticator import SoftAuthenticator

#: The benchmark's relying party; the service is started with this origin allowed.
RP_ID = "localhost"
ORIGIN = "https://localhost"
_ENCODER = msgspec.json.Encoder()


async def passkey_user(api: Api, username: str) -> tuple[str, SoftAuthenticator]:
    """A user with one ready passkey, registered through RegisterPasskey + Verify."""
    user_id = await api.create_factor_user(username)
    started = await api.call(
        "POST", f"/v2/users/{user_id}/passkeys", {"domain": RP_ID, "authenticator": 0}
    )
    options = started.get("publicKeyCredentialCreationOptions")
    passkey_id = started.get("passkeyId")
    if not isinstance(options, dict) or not isinstance(passkey_id, str):
        raise SeedError(f"RegisterPasskey answered {started}")
    authenticator = SoftAuthenticator(counter_step=0)
    credential = authenticator.create(options, ORIGIN, algorithm=-7)  # ES256, the common one
    await api.call(
        "POST",
        f"/v2/users/{user_id}/passkeys/{passkey_id}",
        {"publicKeyCredential": credential, "passkeyName": "bench"},
    )
    return user_id, authenticator


async def challenged_pair(api: Api, user_id: str, authenticator: SoftAuthenticator) -> str:
    """``"<sessionId> <assertion JSON>"``: a session with a pending challenge, answered."""
    body: dict[str, Any] = {
        "checks": {"user": {"userId": user_id}},
        "challenges": {
            "webAuthN": {
                "domain": RP_ID,
                "userVerificationRequirement": "USER_VERIFICATION_REQUIREMENT_REQUIRED",
            }
        },
    }
    reply = await api.call("POST", "/v2/sessions", body)
    session_id = reply.get("sessionId")
    challenges = reply.get("challenges") or {}
    options = (challenges.get("webAuthN") or {}).get("publicKeyCredentialRequestOptions")
    if not isinstance(session_id, str) or not isinstance(options, dict):
        raise SeedError(f"CreateSession with a WebAuthn challenge answered {reply}")
    assertion = authenticator.get(options, ORIGIN)
    encoded = _ENCODER.encode(assertion).decode()
    if " " in encoded:  # an ids-file line is "<id> <code>"
        raise SeedError("an assertion's JSON must not contain spaces")
    return f"{session_id} {encoded}"


async def seed_pairs(api: Api, *, users: int, sessions: int, run_tag: str) -> list[str]:
    """``sessions`` one-use (session, assertion) lines over ``users`` passkey users."""
    owners = await asyncio.gather(
        *(passkey_user(api, f"benchpk{index}-{run_tag}") for index in range(users))
    )

    async def one(index: int) -> str:
        user_id, authenticator = owners[index % users]
        return await challenged_pair(api, user_id, authenticator)

    return await bounded_map(sessions, one, concurrency=64)
