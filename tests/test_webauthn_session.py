"""WebAuthn challenges and checks on sessions, end to end (spec §4.3, §5.1; checklist 7, 8, 10,
19, 32).

Real server, real Redis, real signatures: passkeys and U2F keys are registered through the
User API with the software authenticator of ``tests.webauthn_authenticator``, and every
assertion is the JSON a browser would post. What is proven: the request options, the factor
and its ``userVerified``, that a challenge is replaced, used up (by a failed check too) and
expires, every class of refusal with ZITADEL's id (and that no refusal is a 500 or writes
anything), clone detection, the MFA bearer rule, a race of one assertion sent many times, and
events without secrets. Every flow runs with ES256 and with EdDSA credentials.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pyotp
import pytest

from storage import keys
from tests.driven import DrivenClock
from tests.support import ADMIN_TOKEN, PASSWORD, RP_ID, WEBAUTHN_ORIGIN, Api, Reply, session_history
from tests.test_passkeys_api import (
    CHALLENGE_TTL_MS,
    Client,
    _client_on_a_driven_clock,  # noqa: F401 (the module's app runs on a driven clock)
    _clock,  # noqa: F401
    assert_error,
    register_passkey,
    register_u2f,
    security_key,
    user_events,
)
from tests.webauthn_authenticator import (
    FLAG_UV,
    Algorithm,
    SoftAuthenticator,
    b64u,
    public_key_options,
    tamper_authenticator_data,
    tamper_client_data,
    tamper_signature,
    truncate,
)

pytestmark = pytest.mark.asyncio

SESSION_CONNECT = "/zitadel.session.v2.SessionService"
ALGORITHMS = [Algorithm.ES256, Algorithm.EDDSA]
REQUIRED = "USER_VERIFICATION_REQUIREMENT_REQUIRED"
PREFERRED = "USER_VERIFICATION_REQUIREMENT_PREFERRED"
DISCOURAGED = "USER_VERIFICATION_REQUIREMENT_DISCOURAGED"
EVIL = "https://evil.example"


# -- helpers ----------------------------------------------------------------------------------
def ask(requirement: Any = REQUIRED, domain: Any = RP_ID) -> dict[str, Any]:
    """A ``challenges`` object asking for a WebAuthn challenge."""
    challenge: dict[str, Any] = {"userVerificationRequirement": requirement}
    if domain is not None:
        challenge["domain"] = domain
    return {"webAuthN": challenge}


def check(assertion: Any) -> dict[str, Any]:
    return {"checks": {"webAuthN": {"credentialAssertionData": assertion}}}


def request_options(reply: Reply) -> dict[str, Any]:
    """The wrapped request options of a reply that asked for a WebAuthn challenge."""
    assert reply.status in (200, 201), reply.body
    options = reply.body["challenges"]["webAuthN"]["publicKeyCredentialRequestOptions"]
    assert set(options) == {"publicKey"}
    return dict(options)


async def passkey_user(
    api: Api, algorithm: Algorithm = Algorithm.ES256, auth: SoftAuthenticator | None = None
) -> tuple[str, SoftAuthenticator, str]:
    """A human with a password and one ready passkey; (user id, authenticator, credential)."""
    user_id = await api.human()
    auth = auth or SoftAuthenticator()
    _, credential_id = await register_passkey(api, user_id, auth, algorithm)
    return user_id, auth, credential_id


async def u2f_user(
    api: Api, algorithm: Algorithm = Algorithm.ES256
) -> tuple[str, SoftAuthenticator, str]:
    user_id = await api.human()
    key = security_key()
    _, credential_id = await register_u2f(api, user_id, key, algorithm)
    return user_id, key, credential_id


async def challenged(
    api: Api, user_id: str, requirement: str = REQUIRED, domain: str = RP_ID
) -> tuple[str, dict[str, Any]]:
    """A session with a user check and a WebAuthn challenge; (session id, request options)."""
    created = await api.create({"checks": {"user": {"userId": user_id}}})
    assert created.status == 201, created.body
    sid = str(created.body["sessionId"])
    reply = await api.set(sid, {"challenges": ask(requirement, domain)})
    return sid, request_options(reply)


async def session(api: Api, sid: str) -> dict[str, Any]:
    reply = await api.get(sid)
    assert reply.status == 200, reply.body
    return dict(reply.body["session"])


async def sequence(api: Api, sid: str) -> str:
    return str((await session(api, sid))["sequence"])


async def all_streams(redis: Any) -> bytes:
    everything = b""
    async for stream in redis.scan_iter("sessiond:events:*"):
        if (await redis.type(stream)) == b"stream":
            everything += b" ".join(v for _, f in await redis.xrange(stream) for v in f.values())
    return everything


async def connect(client: Client, method: str, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        f"{SESSION_CONNECT}/{method}",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    return response.status, await response.json()


# -- checklist 7, 8: challenges that cannot be made -------------------------------------------
async def test_16_7_a_challenge_without_a_user_fails(api: Api):
    reply = await api.create({"challenges": ask()})
    assert_error(reply, 400, 9, "COMMAND-eeR2e")


@pytest.mark.parametrize("domain", [None, ""])
async def test_16_8_a_challenge_without_a_domain_fails(api: Api, domain: str | None):
    user_id, _, _ = await passkey_user(api)
    reply = await api.create(
        {"checks": {"user": {"userId": user_id}}, "challenges": ask(domain=domain)}
    )
    assert_error(reply, 400, 3)


BAD_CHALLENGES: list[tuple[str, dict[str, Any]]] = [
    ("unspecified", ask(requirement="USER_VERIFICATION_REQUIREMENT_UNSPECIFIED")),
    ("zero", ask(requirement=0)),
    ("undefined-number", ask(requirement=7)),
    ("unknown-name", ask(requirement="USER_VERIFICATION_REQUIREMENT_SOMETIMES")),
    ("null", ask(requirement=None)),
    ("missing", {"webAuthN": {"domain": RP_ID}}),
    ("domain-too-long", ask(domain="x" * 201)),
    ("domain-not-a-string", ask(domain=["login.example.com"])),
    ("not-an-object", {"webAuthN": "login.example.com"}),
]


@pytest.mark.parametrize(
    "challenge", [c for _, c in BAD_CHALLENGES], ids=[n for n, _ in BAD_CHALLENGES]
)
async def test_a_bad_challenge_request_is_400_and_writes_nothing(
    api: Api, challenge: dict[str, Any]
):
    user_id, _, _ = await passkey_user(api)
    sid = (await api.create({"checks": {"user": {"userId": user_id}}})).body["sessionId"]
    before = await sequence(api, sid)

    reply = await api.set(sid, {"challenges": challenge})

    assert_error(reply, 400, 3)
    assert await sequence(api, sid) == before


@pytest.mark.parametrize(
    ("number", "expected"), [(1, "required"), (2, "preferred"), (3, "discouraged")]
)
async def test_requirements_may_be_given_by_number(api: Api, number: int, expected: str):
    user_id, _, _ = await passkey_user(api)
    created = await api.create({"checks": {"user": {"userId": user_id}}, "challenges": ask(number)})
    assert public_key_options(request_options(created))["userVerification"] == expected


async def test_a_user_without_passkeys_gets_no_required_challenge(api: Api):
    user_id, _, _ = await u2f_user(api)
    created = await api.create({"checks": {"user": {"userId": user_id}}})
    sid = created.body["sessionId"]
    before = await sequence(api, sid)

    reply = await api.set(sid, {"challenges": ask(REQUIRED)})

    assert_error(reply, 400, 9, "WEBAU-4G8sw")
    assert await sequence(api, sid) == before


@pytest.mark.parametrize("requirement", [REQUIRED, PREFERRED, DISCOURAGED])
async def test_a_user_without_any_key_gets_no_challenge(api: Api, requirement: str):
    user_id = await api.human()
    reply = await api.create(
        {"checks": {"user": {"userId": user_id}}, "challenges": ask(requirement)}
    )
    assert_error(reply, 400, 9, "WEBAU-4G8sw")


# -- checklist 10, 32: the passkey flow ------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_16_10_required_challenge_then_a_uv_assertion(api: Api, algorithm: Algorithm):
    user_id, auth, credential_id = await passkey_user(api, algorithm)

    created = await api.create(
        {"checks": {"user": {"userId": user_id}}, "challenges": ask(REQUIRED)}
    )

    assert created.status == 201, created.body
    options = public_key_options(request_options(created))
    assert options["rpId"] == RP_ID
    assert options["timeout"] == CHALLENGE_TTL_MS
    assert options["userVerification"] == "required"
    assert options["allowCredentials"] == [{"type": "public-key", "id": credential_id}]
    assert len(options["challenge"]) >= 22  # 16 bytes and more, base64url
    assert "=" not in options["challenge"]
    sid, token = created.body["sessionId"], created.body["sessionToken"]
    got = (await api.get(sid, sessionToken=token)).body["session"]
    assert set(got["factors"]) == {"user"}
    assert not {"metadata", "userAgent", "expirationDate"} & set(got)
    assert "challenges" not in got

    assertion = auth.get(options, WEBAUTHN_ORIGIN)
    assert assertion["id"] == credential_id
    checked = await api.set(sid, check(assertion))

    assert checked.status == 200, checked.body
    factors = (await session(api, sid))["factors"]
    assert set(factors) == {"user", "webAuthN"}
    assert factors["webAuthN"]["userVerified"] is True
    assert factors["webAuthN"]["verifiedAt"]
    assert (await session(api, sid))["sequence"] == checked.body["details"]["sequence"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_16_32_a_uv_webauthn_session_token_is_a_bearer_for_its_own_session(
    api: Api, algorithm: Algorithm
):
    user_id, auth, _ = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id)
    checked = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))
    assert checked.status == 200, checked.body

    reply = await api.get(sid, checked.body["sessionToken"])

    assert reply.status == 200, reply.body
    assert reply.body["session"]["factors"]["webAuthN"]["userVerified"] is True


async def test_a_uv_webauthn_session_alone_may_register_more_factors(api: Api):
    user_id, auth, _ = await passkey_user(api)
    sid, options = await challenged(api, user_id)
    token = (await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))).body["sessionToken"]
    _, second = await register_passkey(api, user_id, SoftAuthenticator(), Algorithm.EDDSA, token)
    sid, options = await challenged(api, user_id)
    assert {item["id"] for item in public_key_options(options)["allowCredentials"]} >= {second}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_missing_uv_flag_fails_a_required_challenge(api: Api, algorithm: Algorithm):
    user_id, auth, _ = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id)

    reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN, uv=False)))

    assert_error(reply, 400, 3, "WEBAU-3M9si")
    assert "webAuthN" not in (await session(api, sid))["factors"]


# -- checklist 19: the U2F flow ------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    ("requirement", "wire"), [(PREFERRED, "preferred"), (DISCOURAGED, "discouraged")]
)
async def test_16_19_u2f_with_a_non_uv_assertion_is_not_user_verified(
    api: Api, redis: Any, algorithm: Algorithm, requirement: str, wire: str
):
    user_id, key, credential_id = await u2f_user(api, algorithm)
    sid, options = await challenged(api, user_id, requirement)
    inner = public_key_options(options)
    assert inner["userVerification"] == wire
    assert inner["allowCredentials"] == [{"type": "public-key", "id": credential_id}]

    assertion = key.get(options, WEBAUTHN_ORIGIN, uv=False)
    assert "userHandle" not in assertion["response"]
    reply = await api.set(sid, check(assertion))

    assert reply.status == 200, reply.body
    factors = (await session(api, sid))["factors"]
    assert set(factors) == {"user", "webAuthN"}
    assert "userVerified" not in factors["webAuthN"]  # false is not emitted (protojson)
    assert factors["webAuthN"]["verifiedAt"]
    assert "user.human.mfa.u2f.token.signcount.changed" in await user_events(redis, user_id)


async def test_a_preferred_challenge_with_a_uv_passkey_is_user_verified(api: Api):
    user_id, auth, _ = await passkey_user(api, Algorithm.EDDSA)
    sid, options = await challenged(api, user_id, PREFERRED)
    reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))
    assert reply.status == 200, reply.body
    assert (await session(api, sid))["factors"]["webAuthN"]["userVerified"] is True


async def test_required_offers_only_passkeys_preferred_and_discouraged_offer_both(api: Api):
    user_id, _, passkey = await passkey_user(api)
    _, u2f = await register_u2f(api, user_id, security_key(), Algorithm.EDDSA)

    offered = {}
    for requirement in (REQUIRED, PREFERRED, DISCOURAGED):
        _, options = await challenged(api, user_id, requirement)
        allow = public_key_options(options)["allowCredentials"]
        assert all(item["type"] == "public-key" for item in allow)
        offered[requirement] = {item["id"] for item in allow}

    assert offered == {REQUIRED: {passkey}, PREFERRED: {passkey, u2f}, DISCOURAGED: {passkey, u2f}}


async def test_a_u2f_key_against_a_required_challenge_is_not_found(api: Api):
    user_id, _, _ = await passkey_user(api)
    key = security_key()
    _, u2f = await register_u2f(api, user_id, key)
    sid, options = await challenged(api, user_id, REQUIRED)
    before = await sequence(api, sid)

    forced = key.get(options, WEBAUTHN_ORIGIN, uv=True, credential_id=u2f, ignore_allow_list=True)
    reply = await api.set(sid, check(forced))

    assert_error(reply, 400, 9, "COMMAND-Aej7i")
    assert "webAuthN" not in (await session(api, sid))["factors"]
    assert (await session(api, sid))["sequence"] == before


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_another_users_credential_is_not_found(api: Api, algorithm: Algorithm):
    alice, _, _ = await passkey_user(api, algorithm)
    _, mallory_auth, mallory_credential = await passkey_user(api, algorithm)
    sid, options = await challenged(api, alice)

    forged = mallory_auth.get(
        options, WEBAUTHN_ORIGIN, credential_id=mallory_credential, ignore_allow_list=True
    )
    reply = await api.set(sid, check(forged))

    assert_error(reply, 400, 9, "COMMAND-Aej7i")
    assert "webAuthN" not in (await session(api, sid))["factors"]


# -- the challenge: replaced, used up, expiring ------------------------------------------------
async def test_a_new_challenge_replaces_the_previous_one(api: Api):
    user_id, auth, _ = await passkey_user(api)
    sid, old = await challenged(api, user_id)
    new = request_options(await api.set(sid, {"challenges": ask()}))
    assert public_key_options(old)["challenge"] != public_key_options(new)["challenge"]

    stale = await api.set(sid, check(auth.get(old, WEBAUTHN_ORIGIN)))

    assert_error(stale, 400, 3, "WEBAU-3M9si")
    assert "webAuthN" not in (await session(api, sid))["factors"]


async def test_a_new_challenge_then_its_assertion_succeeds(api: Api):
    user_id, auth, _ = await passkey_user(api)
    sid, _ = await challenged(api, user_id)
    new = request_options(await api.set(sid, {"challenges": ask()}))
    assert (await api.set(sid, check(auth.get(new, WEBAUTHN_ORIGIN)))).status == 200


async def test_a_check_without_a_challenge_fails(api: Api):
    user_id, auth, _ = await passkey_user(api)
    created = await api.create({"checks": {"user": {"userId": user_id}}})
    sid = created.body["sessionId"]
    _, options = await challenged(api, user_id)  # a challenge of another session
    before = await sequence(api, sid)

    reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))

    assert_error(reply, 400, 9, "COMMAND-Ioqu5")
    assert await sequence(api, sid) == before


async def test_a_check_without_a_user_fails(api: Api):
    _, auth, _ = await passkey_user(api)
    options = {"publicKey": {"challenge": b64u(os.urandom(32)), "rpId": RP_ID}}
    reply = await api.create(check(auth.get(options, WEBAUTHN_ORIGIN)))
    assert_error(reply, 400, 9, "COMMAND-Sfw3r")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_used_assertion_replayed_fails(api: Api, algorithm: Algorithm):
    user_id, auth, _ = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id)
    assertion = auth.get(options, WEBAUTHN_ORIGIN)
    assert (await api.set(sid, check(assertion))).status == 200
    verified_at = (await session(api, sid))["factors"]["webAuthN"]["verifiedAt"]

    replay = await api.set(sid, check(assertion))
    assert_error(replay, 400, 9, "COMMAND-Ioqu5")
    await api.set(sid, {"challenges": ask()})
    replay_new_challenge = await api.set(sid, check(assertion))
    assert_error(replay_new_challenge, 400, 3, "WEBAU-3M9si")
    other, _ = await challenged(api, user_id)
    replay_elsewhere = await api.set(other, check(assertion))
    assert_error(replay_elsewhere, 400, 3, "WEBAU-3M9si")
    assert (await session(api, sid))["factors"]["webAuthN"]["verifiedAt"] == verified_at
    assert set((await session(api, other))["factors"]) == {"user"}


async def test_a_failed_check_uses_the_challenge_up(api: Api):
    user_id, auth, _ = await passkey_user(api)
    sid, options = await challenged(api, user_id)

    wrong = await api.set(sid, check(auth.get(options, EVIL)))
    right = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))

    assert_error(wrong, 400, 3, "WEBAU-3M9si")
    assert_error(right, 400, 9, "COMMAND-Ioqu5")
    assert "webAuthN" not in (await session(api, sid))["factors"]


async def test_a_challenge_expires_after_its_timeout(api: Api, clock: DrivenClock):
    user_id, auth, _ = await passkey_user(api)
    sid, options = await challenged(api, user_id)
    assertion = auth.get(options, WEBAUTHN_ORIGIN)
    clock.advance(CHALLENGE_TTL_MS + 1_000)

    reply = await api.set(sid, check(assertion))

    assert_error(reply, 400, 9, "COMMAND-Ioqu5")
    assert "webAuthN" not in (await session(api, sid))["factors"]


async def test_a_challenge_is_good_just_before_its_timeout(api: Api, clock: DrivenClock):
    user_id, auth, _ = await passkey_user(api)
    sid, options = await challenged(api, user_id)
    clock.advance(CHALLENGE_TTL_MS - 5_000)
    assert (await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))).status == 200


# -- verification failures: WEBAU-3M9si -------------------------------------------------------
def _wrong_challenge(auth: SoftAuthenticator, options: dict[str, Any]) -> dict[str, Any]:
    other = {"publicKey": {**public_key_options(options), "challenge": b64u(os.urandom(32))}}
    return auth.get(other, WEBAUTHN_ORIGIN)


def _claimed_uv(auth: SoftAuthenticator, options: dict[str, Any]) -> dict[str, Any]:
    return tamper_authenticator_data(
        auth.get(options, WEBAUTHN_ORIGIN, uv=False), set_flags=FLAG_UV
    )


FAILURES: list[tuple[str, Any]] = [
    ("wrong-origin", lambda a, o: a.get(o, EVIL)),
    ("wrong-scheme", lambda a, o: a.get(o, "http://login.example.com")),
    ("wrong-port", lambda a, o: a.get(o, "https://login.example.com:8443")),
    ("wrong-rp-hash", lambda a, o: a.get(o, WEBAUTHN_ORIGIN, rp_id="example.com")),
    ("wrong-challenge", _wrong_challenge),
    ("wrong-ceremony", lambda a, o: a.get(o, WEBAUTHN_ORIGIN, client_data_type="webauthn.create")),
    ("no-user-presence", lambda a, o: a.get(o, WEBAUTHN_ORIGIN, up=False)),
    ("tampered-signature", lambda a, o: tamper_signature(a.get(o, WEBAUTHN_ORIGIN))),
    (
        "tampered-client-data",
        lambda a, o: tamper_client_data(a.get(o, WEBAUTHN_ORIGIN), origin=WEBAUTHN_ORIGIN + "."),
    ),
    (
        "tampered-client-data-challenge",
        lambda a, o: tamper_client_data(a.get(o, WEBAUTHN_ORIGIN), challenge=b64u(b"x" * 32)),
    ),
    (
        "tampered-authenticator-data",
        lambda a, o: tamper_authenticator_data(a.get(o, WEBAUTHN_ORIGIN), sign_count=1000),
    ),
    ("claimed-uv", _claimed_uv),
    ("signature-of-other-data", lambda a, o: _resigned(a, o)),
]


def _resigned(auth: SoftAuthenticator, options: dict[str, Any]) -> dict[str, Any]:
    """A well-formed signature by the right key, over other bytes."""
    assertion = auth.get(options, WEBAUTHN_ORIGIN)
    signature = auth.credential(assertion["id"]).sign(b"something else entirely")
    assertion["response"]["signature"] = b64u(signature)
    return assertion


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("make", [make for _, make in FAILURES], ids=[n for n, _ in FAILURES])
async def test_a_failed_verification_is_webau_3m9si(api: Api, algorithm: Algorithm, make: Any):
    user_id, auth, _ = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id)

    reply = await api.set(sid, check(make(auth, options)))

    assert_error(reply, 400, 3, "WEBAU-3M9si")
    assert set((await session(api, sid))["factors"]) == {"user"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_challenge_for_another_rp_than_the_credentials_fails(
    api: Api, algorithm: Algorithm
):
    """The challenge names ``example.com`` (a registrable parent of the origin's host, so a
    valid RP id for this origin); the credential was registered for ``login.example.com``."""
    user_id, auth, credential_id = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id, domain="example.com")
    assert public_key_options(options)["rpId"] == "example.com"

    assertion = auth.get(
        options, WEBAUTHN_ORIGIN, credential_id=credential_id, ignore_allow_list=True
    )
    reply = await api.set(sid, check(assertion))

    assert_error(reply, 400, 3, "WEBAU-3M9si")
    assert set((await session(api, sid))["factors"]) == {"user"}


# -- malformed assertions: 400, never 500, nothing written --------------------------------------
def _set(path: tuple[str, ...], value: Any) -> Any:
    def spoil(assertion: dict[str, Any]) -> dict[str, Any]:
        target = assertion
        for name in path[:-1]:
            target = target[name]
        target[path[-1]] = value
        return assertion

    return spoil


def _drop(path: tuple[str, ...]) -> Any:
    def spoil(assertion: dict[str, Any]) -> dict[str, Any]:
        target = assertion
        for name in path[:-1]:
            target = target[name]
        del target[path[-1]]
        return assertion

    return spoil


#: (name, spoil, accepted error ids: the contract's ADgv4; a cut value may instead decode and
#: then fail the verification, which the contract calls 3M9si)
MALFORMED: list[tuple[str, Any, set[str]]] = [
    ("empty-object", lambda a: {}, {"WEBAU-ADgv4"}),
    ("no-response", _drop(("response",)), {"WEBAU-ADgv4"}),
    ("no-signature", _drop(("response", "signature")), {"WEBAU-ADgv4"}),
    ("no-authenticator-data", _drop(("response", "authenticatorData")), {"WEBAU-ADgv4"}),
    ("no-client-data", _drop(("response", "clientDataJSON")), {"WEBAU-ADgv4"}),
    ("no-id", _drop(("id",)), {"WEBAU-ADgv4"}),
    ("no-raw-id", _drop(("rawId",)), {"WEBAU-ADgv4"}),
    ("wrong-type", _set(("type",), "password"), {"WEBAU-ADgv4"}),
    ("response-a-string", _set(("response",), "abc"), {"WEBAU-ADgv4"}),
    ("signature-a-number", _set(("response", "signature"), 17), {"WEBAU-ADgv4"}),
    ("bad-base64-signature", _set(("response", "signature"), "!!*!!"), {"WEBAU-ADgv4"}),
    ("bad-base64-client-data", _set(("response", "clientDataJSON"), "%%%"), {"WEBAU-ADgv4"}),
    (
        "client-data-not-json",
        _set(("response", "clientDataJSON"), b64u(b"not json at all")),
        {"WEBAU-ADgv4"},
    ),
    (
        "client-data-a-list",
        _set(("response", "clientDataJSON"), b64u(b"[1,2,3]")),
        {"WEBAU-ADgv4"},
    ),
    (
        "authenticator-data-too-short",
        _set(("response", "authenticatorData"), b64u(b"\x00" * 20)),
        {"WEBAU-ADgv4"},
    ),
    # a size limit before parsing is a validation error (no id): as good, and cheaper
    (
        "huge-client-data",
        _set(("response", "clientDataJSON"), "A" * 300_000),
        {"WEBAU-ADgv4", ""},
    ),
    (
        "huge-signature",
        _set(("response", "signature"), "A" * 300_000),
        {"WEBAU-ADgv4", ""},
    ),
    (
        "huge-extension-results",
        _set(("clientExtensionResults",), {"x": "y" * 300_000}),
        {"WEBAU-ADgv4", ""},
    ),
    (
        "truncated-authenticator-data",
        lambda a: truncate(a, ["authenticatorData"]),
        {"WEBAU-ADgv4", "WEBAU-3M9si"},
    ),
    (
        "truncated-client-data",
        lambda a: truncate(a, ["clientDataJSON"]),
        {"WEBAU-ADgv4", "WEBAU-3M9si"},
    ),
    ("truncated-signature", lambda a: truncate(a, ["signature"]), {"WEBAU-ADgv4", "WEBAU-3M9si"}),
]


@pytest.mark.parametrize(
    ("spoil", "error_ids"),
    [(spoil, ids) for _, spoil, ids in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
async def test_a_malformed_assertion_is_400_and_writes_nothing(
    api: Api, redis: Any, spoil: Any, error_ids: set[str]
):
    user_id, auth, _ = await passkey_user(api)
    sid, options = await challenged(api, user_id)
    before = await sequence(api, sid)
    events_before = len(await session_history(redis, sid))

    reply = await api.set(sid, check(spoil(auth.get(options, WEBAUTHN_ORIGIN))))

    assert_error(reply, 400, 3)
    assert reply.error_id in error_ids, reply.body
    assert await sequence(api, sid) == before
    assert len(await session_history(redis, sid)) == events_before
    assert set((await session(api, sid))["factors"]) == {"user"}


@pytest.mark.parametrize(
    "value",
    ["a string", 42, ["a", "list"], True, None],
    ids=["string", "number", "list", "bool", "null"],
)
async def test_assertion_data_that_is_not_an_object_is_a_validation_error(api: Api, value: Any):
    user_id, _, _ = await passkey_user(api)
    sid, _ = await challenged(api, user_id)
    before = await sequence(api, sid)

    reply = await api.set(sid, {"checks": {"webAuthN": {"credentialAssertionData": value}}})

    assert_error(reply, 400, 3)
    assert await sequence(api, sid) == before


async def test_a_check_without_assertion_data_is_a_validation_error(api: Api):
    user_id, _, _ = await passkey_user(api)
    sid, _ = await challenged(api, user_id)
    before = await sequence(api, sid)

    reply = await api.set(sid, {"checks": {"webAuthN": {}}})

    assert_error(reply, 400, 3)
    assert await sequence(api, sid) == before


# -- the sign counter ----------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_cloned_key_is_detected(api: Api, redis: Any, algorithm: Algorithm):
    user_id, auth, credential_id = await passkey_user(api, algorithm)
    for _ in range(2):
        sid, options = await challenged(api, user_id)
        assert (await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))).status == 200
    auth.set_sign_count(credential_id, 0)  # the clone is two assertions behind: it says 1
    sid, options = await challenged(api, user_id)

    reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))

    assert_error(reply, 400, 3, "WEBAU-4M90s")
    assert set((await session(api, sid))["factors"]) == {"user"}
    assert "user.human.passwordless.token.clone.detected" in await user_events(redis, user_id)


async def test_a_cloned_u2f_key_is_detected(api: Api, redis: Any):
    user_id, key, credential_id = await u2f_user(api)
    sid, options = await challenged(api, user_id, PREFERRED)
    assert (await api.set(sid, check(key.get(options, WEBAUTHN_ORIGIN)))).status == 200
    key.set_sign_count(credential_id, 0)  # says 1 again
    sid, options = await challenged(api, user_id, PREFERRED)

    reply = await api.set(sid, check(key.get(options, WEBAUTHN_ORIGIN)))

    assert_error(reply, 400, 3, "WEBAU-4M90s")
    assert "user.human.mfa.u2f.token.clone.detected" in await user_events(redis, user_id)


async def test_an_authenticator_that_never_counts_is_accepted_every_time(api: Api, redis: Any):
    user_id, auth, _ = await passkey_user(api, Algorithm.EDDSA, SoftAuthenticator(counter_step=0))
    for _ in range(3):
        sid, options = await challenged(api, user_id)
        reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))
        assert reply.status == 200, reply.body
    events = await user_events(redis, user_id)
    assert "user.human.passwordless.token.clone.detected" not in events


async def test_the_counter_is_stored_so_a_jump_forward_is_fine(api: Api, redis: Any):
    user_id, auth, credential_id = await passkey_user(api)
    auth.set_sign_count(credential_id, 41)
    sid, options = await challenged(api, user_id)
    assert (await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))).status == 200  # 42
    assert "user.human.passwordless.token.signcount.changed" in await user_events(redis, user_id)
    auth.set_sign_count(credential_id, 41)  # says 42 again: not greater than stored
    sid, options = await challenged(api, user_id)
    reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))
    assert_error(reply, 400, 3, "WEBAU-4M90s")


# -- the bearer rule (MFA) ---------------------------------------------------------------------
async def test_a_password_only_token_stops_being_a_bearer_once_a_passkey_is_ready(api: Api):
    user_id = await api.human()
    before = await api.session_for(user_id)
    assert (await api.get(before.body["sessionId"], before.body["sessionToken"])).status == 200

    await register_passkey(api, user_id, SoftAuthenticator())

    after = await api.session_for(user_id)
    assert (await api.get(after.body["sessionId"], after.body["sessionToken"])).status == 401


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_password_and_u2f_is_a_bearer_password_alone_is_not(api: Api, algorithm: Algorithm):
    user_id, key, _ = await u2f_user(api, algorithm)
    password_only = await api.session_for(user_id)
    sid, token = password_only.body["sessionId"], password_only.body["sessionToken"]
    assert (await api.get(sid, token)).status == 401

    options = request_options(await api.set(sid, {"challenges": ask(DISCOURAGED)}))
    checked = await api.set(sid, check(key.get(options, WEBAUTHN_ORIGIN)))
    assert checked.status == 200, checked.body

    reply = await api.get(sid, checked.body["sessionToken"])
    assert reply.status == 200, reply.body
    factors = reply.body["session"]["factors"]
    assert {"user", "password", "webAuthN"} <= set(factors)
    assert "userVerified" not in factors["webAuthN"]


async def test_a_u2f_factor_without_a_password_is_no_bearer(api: Api):
    user_id, key, _ = await u2f_user(api)
    sid, options = await challenged(api, user_id, PREFERRED)
    checked = await api.set(sid, check(key.get(options, WEBAUTHN_ORIGIN)))
    assert checked.status == 200, checked.body
    assert (await api.get(sid, checked.body["sessionToken"])).status == 401


# -- races ----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_one_assertion_sent_twenty_times_at_once_succeeds_once(
    api: Api, algorithm: Algorithm
):
    user_id, auth, _ = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id)
    body = check(auth.get(options, WEBAUTHN_ORIGIN))

    replies = await asyncio.gather(*(api.set(sid, body) for _ in range(20)))

    outcome = [(reply.status, reply.error_id if reply.status != 200 else "") for reply in replies]
    assert [status for status, _ in outcome].count(200) == 1, outcome
    assert {status for status, _ in outcome} == {200, 400}, outcome
    assert {error for status, error in outcome if status != 200} <= {
        "COMMAND-Ioqu5",
        "WEBAU-4M90s",
    }, outcome
    winner = next(reply for reply in replies if reply.status == 200)
    assert (await session(api, sid))["sequence"] == winner.body["details"]["sequence"]


async def test_one_assertion_sent_twenty_times_over_connect_succeeds_once(client: Client, api: Api):
    user_id, auth, _ = await passkey_user(api, Algorithm.EDDSA)
    sid, options = await challenged(api, user_id)
    body = {"sessionId": sid, **check(auth.get(options, WEBAUTHN_ORIGIN))}

    replies = await asyncio.gather(*(connect(client, "SetSession", body) for _ in range(20)))

    statuses = [status for status, _ in replies]
    assert statuses.count(200) == 1, replies
    assert set(statuses) == {200, 400}, replies
    refused = {reply["details"][0]["debug"]["id"] for status, reply in replies if status != 200}
    assert refused <= {"COMMAND-Ioqu5", "WEBAU-4M90s"}, replies


async def test_assertions_on_two_sessions_of_the_user_at_once_both_succeed(api: Api):
    user_id, auth, _ = await passkey_user(api)
    first, first_options = await challenged(api, user_id)
    second, second_options = await challenged(api, user_id)
    a = auth.get(first_options, WEBAUTHN_ORIGIN)
    b = auth.get(second_options, WEBAUTHN_ORIGIN)  # counter 2, sent alongside counter 1

    replies = await asyncio.gather(api.set(first, check(a)), api.set(second, check(b)))

    # counters arrive in either order; at most the later-counted one may be refused as a clone
    outcome = [(reply.status, reply.error_id if reply.status != 200 else "") for reply in replies]
    assert outcome[1] == (200, ""), outcome
    assert outcome[0] in ((200, ""), (400, "WEBAU-4M90s")), outcome
    # the stored counter is the highest seen (2), not whichever write came last
    auth.set_sign_count(a["id"], 1)
    sid, options = await challenged(api, user_id)
    replay = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))
    assert_error(replay, 400, 3, "WEBAU-4M90s")


# -- Connect ----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_the_webauthn_flow_over_connect(client: Client, api: Api, algorithm: Algorithm):
    user_id, auth, credential_id = await passkey_user(api, algorithm)

    status, created = await connect(
        client,
        "CreateSession",
        {"checks": {"user": {"userId": user_id}}, "challenges": ask(REQUIRED)},
    )
    assert status == 200, created
    options = created["challenges"]["webAuthN"]["publicKeyCredentialRequestOptions"]
    assert public_key_options(options)["allowCredentials"] == [
        {"type": "public-key", "id": credential_id}
    ]
    sid = created["sessionId"]
    status, wrong = await connect(
        client, "SetSession", {"sessionId": sid, **check(auth.get(options, EVIL))}
    )
    assert status == 400, wrong
    assert wrong["code"] == "invalid_argument"
    assert wrong["details"][0]["debug"]["id"] == "WEBAU-3M9si"

    status, again = await connect(
        client, "SetSession", {"sessionId": sid, "challenges": ask(REQUIRED)}
    )
    assert status == 200, again
    options = again["challenges"]["webAuthN"]["publicKeyCredentialRequestOptions"]
    status, checked = await connect(
        client, "SetSession", {"sessionId": sid, **check(auth.get(options, WEBAUTHN_ORIGIN))}
    )
    assert status == 200, checked
    status, got = await connect(client, "GetSession", {"sessionId": sid})
    assert status == 200, got
    assert got["session"]["factors"]["webAuthN"]["userVerified"] is True


async def test_connect_refuses_a_non_object_assertion(client: Client, api: Api):
    user_id, _, _ = await passkey_user(api)
    sid, _ = await challenged(api, user_id)
    status, body = await connect(
        client,
        "SetSession",
        {"sessionId": sid, "checks": {"webAuthN": {"credentialAssertionData": "x"}}},
    )
    assert (status, body["code"]) == (400, "invalid_argument")


# -- events --------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_events_name_the_challenge_and_the_check_and_carry_no_secrets(
    api: Api, redis: Any, algorithm: Algorithm
):
    user_id, auth, credential_id = await passkey_user(api, algorithm)
    sid, options = await challenged(api, user_id)
    assertion = auth.get(options, WEBAUTHN_ORIGIN)
    checked = await api.set(sid, check(assertion))
    assert checked.status == 200, checked.body

    entries = await session_history(redis, sid)
    types = [fields[b"type"].decode() for fields in entries]
    assert types.index("session.webAuthN.challenged") < types.index("session.webAuthN.checked")
    assert "user.human.passwordless.token.signcount.changed" in await user_events(redis, user_id)
    everything = await all_streams(redis)
    everything += b" ".join(v for fields in entries for v in fields.values())
    response = assertion["response"]
    for secret in (
        response["signature"],
        response["clientDataJSON"],
        response["authenticatorData"],
        checked.body["sessionToken"],
        PASSWORD,
    ):
        assert secret.encode() not in everything
    state = b" ".join((await redis.hgetall(keys.session(sid))).values())
    assert response["signature"].encode() not in state
    assert checked.body["sessionToken"].encode() not in state
    assert credential_id  # public: it may be stored, it is no secret


# -- the full flows of the checklist (17, 20) ---------------------------------------------------
async def test_16_17_passkey_session_registers_every_factor_then_totp_checks(api: Api):
    """Empty session, user check, passkey check; that token enrols U2F, TOTP, OTP SMS and OTP
    e-mail as bearer; a later session checks user + TOTP."""
    user_id = await api.call(
        "POST",
        "/v2/users/human",
        body={
            "username": f"flow-{os.urandom(4).hex()}",
            "profile": {"givenName": "Flow", "familyName": "User"},
            "email": {"email": f"flow{os.urandom(4).hex()}@example.com", "isVerified": True},
            "phone": {"phone": "+41791234567", "isVerified": True},
        },
    )
    assert user_id.status == 201, user_id.body
    uid = str(user_id.body["userId"])
    auth = SoftAuthenticator()
    await register_passkey(api, uid, auth, Algorithm.EDDSA)
    sid = (await api.create({})).body["sessionId"]
    assert (await api.set(sid, {"checks": {"user": {"userId": uid}}})).status == 200
    options = request_options(await api.set(sid, {"challenges": ask(REQUIRED)}))
    checked = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))
    assert checked.status == 200, checked.body
    token = checked.body["sessionToken"]

    await register_u2f(api, uid, security_key(), token=token)
    totp = await api.call("POST", f"/v2/users/{uid}/totp", token, {})
    assert totp.status == 200, totp.body
    generator = pyotp.TOTP(totp.body["secret"])
    step = int(time.time()) // 30
    verified = await api.call(
        "POST", f"/v2/users/{uid}/totp/verify", token, {"code": generator.at(step * 30)}
    )
    assert verified.status == 200, verified.body
    for path in ("otp_sms", "otp_email"):
        added = await api.call("POST", f"/v2/users/{uid}/{path}", token, {})
        assert added.status == 200, (path, added.body)

    later = (await api.create({"checks": {"user": {"userId": uid}}})).body["sessionId"]
    code = generator.at((step + 1) * 30)  # the verification used this step up
    totp_checked = await api.set(later, {"checks": {"totp": {"code": code}}})
    assert totp_checked.status == 200, totp_checked.body
    assert set((await session(api, later))["factors"]) == {"user", "totp"}


async def test_16_20_u2f_then_totp_gives_three_factors(api: Api):
    user_id, key, _ = await u2f_user(api)
    secret = (await api.call("POST", f"/v2/users/{user_id}/totp", body={})).body["secret"]
    generator = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    verified = await api.call(
        "POST", f"/v2/users/{user_id}/totp/verify", body={"code": generator.at(step * 30)}
    )
    assert verified.status == 200, verified.body
    sid, options = await challenged(api, user_id, DISCOURAGED)
    assert (await api.set(sid, check(key.get(options, WEBAUTHN_ORIGIN)))).status == 200

    reply = await api.set(sid, {"checks": {"totp": {"code": generator.at((step + 1) * 30)}}})

    assert reply.status == 200, reply.body
    assert set((await session(api, sid))["factors"]) == {"user", "webAuthN", "totp"}


# -- more refusals a browser would never cause -------------------------------------------------
async def test_a_passkey_removed_after_the_challenge_no_longer_checks(api: Api):
    user_id = await api.human()
    auth = SoftAuthenticator()
    passkey_id, _ = await register_passkey(api, user_id, auth)
    await register_passkey(api, user_id, SoftAuthenticator())  # so the user still has one
    sid, options = await challenged(api, user_id)
    removed = await api.call("DELETE", f"/v2/users/{user_id}/passkeys/{passkey_id}")
    assert removed.status == 200, removed.body

    reply = await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))

    assert_error(reply, 400, 9, "COMMAND-Aej7i")
    assert set((await session(api, sid))["factors"]) == {"user"}


async def test_a_passkey_registered_after_the_challenge_was_not_offered(api: Api):
    """A challenge names the keys it accepts; one that did not exist then is not among them."""
    user_id = await api.human()
    await register_passkey(api, user_id, SoftAuthenticator())
    sid, options = await challenged(api, user_id)
    later = SoftAuthenticator()
    await register_passkey(api, user_id, later)
    (credential,) = later.credentials.values()

    assertion = later.get(
        options, WEBAUTHN_ORIGIN, credential_id=credential.id, ignore_allow_list=True
    )
    reply = await api.set(sid, check(assertion))

    assert_error(reply, 400, 9, "COMMAND-Aej7i")
    assert set((await session(api, sid))["factors"]) == {"user"}


async def test_a_check_in_the_request_that_asks_for_the_challenge_has_none(api: Api):
    user_id, auth, _ = await passkey_user(api)
    _, options = await challenged(api, user_id)  # a challenge of another session
    reply = await api.create(
        {
            "checks": {
                "user": {"userId": user_id},
                "webAuthN": {"credentialAssertionData": auth.get(options, WEBAUTHN_ORIGIN)},
            },
            "challenges": ask(),
        }
    )
    assert_error(reply, 400, 9, "COMMAND-Ioqu5")


async def test_a_user_handle_of_another_user_is_refused(api: Api):
    """WebAuthn §7.2 step 6: a returned user handle must be the credential owner's."""
    user_id, auth, _ = await passkey_user(api)
    _, other_auth, other_credential = await passkey_user(api)
    sid, options = await challenged(api, user_id)
    assertion = auth.get(options, WEBAUTHN_ORIGIN)
    assertion["response"]["userHandle"] = other_auth.get(
        {"publicKey": {"challenge": b64u(os.urandom(32)), "rpId": RP_ID}},
        WEBAUTHN_ORIGIN,
        credential_id=other_credential,
    )["response"]["userHandle"]

    reply = await api.set(sid, check(assertion))

    assert reply.status == 400, reply.body
    assert reply.body["code"] in (3, 9)
    assert set((await session(api, sid))["factors"]) == {"user"}


async def test_a_registrable_parent_domain_is_a_relying_party_of_its_own(api: Api):
    """``example.com`` is a valid RP id for https://login.example.com: a passkey registered
    for it checks against a challenge for it, and not against one for login.example.com."""
    user_id = await api.human()
    auth = SoftAuthenticator()
    started = await api.call(
        "POST", f"/v2/users/{user_id}/passkeys", body={"domain": "example.com"}
    )
    assert started.status == 200, started.body
    credential = auth.create(started.body["publicKeyCredentialCreationOptions"], WEBAUTHN_ORIGIN)
    verified = await api.call(
        "POST",
        f"/v2/users/{user_id}/passkeys/{started.body['passkeyId']}",
        body={"publicKeyCredential": credential, "passkeyName": "parent"},
    )
    assert verified.status == 200, verified.body

    sid, options = await challenged(api, user_id, domain="example.com")
    assert (await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))).status == 200
    sid, options = await challenged(api, user_id, domain=RP_ID)
    forced = auth.get(
        options, WEBAUTHN_ORIGIN, credential_id=credential["id"], ignore_allow_list=True
    )
    assert_error(await api.set(sid, check(forced)), 400, 3, "WEBAU-3M9si")


async def test_a_passkey_for_an_rp_id_foreign_to_every_origin_never_becomes_ready(api: Api):
    """A browser refuses an RP id that is not the origin's host or a parent of it; a server
    must not bind a credential a client claims for one either."""
    user_id = await api.human()
    started = await api.call(
        "POST", f"/v2/users/{user_id}/passkeys", body={"domain": "evil.example"}
    )
    if started.status == 200:
        credential = SoftAuthenticator().create(
            started.body["publicKeyCredentialCreationOptions"], WEBAUTHN_ORIGIN
        )
        verified = await api.call(
            "POST",
            f"/v2/users/{user_id}/passkeys/{started.body['passkeyId']}",
            body={"publicKeyCredential": credential, "passkeyName": "foreign"},
        )
        assert verified.status == 400, verified.body
    else:
        assert started.status == 400, started.body
        assert started.body["code"] in (3, 9)
    listed = await api.call("POST", f"/v2/users/{user_id}/passkeys/_search", body={})
    ready = [e for e in listed.body.get("result", []) if e["state"] == "AUTH_FACTOR_STATE_READY"]
    assert ready == []


@pytest.mark.settings(webauthn_origins="https://accounts.example.org,https://login.example.com")
async def test_every_configured_origin_is_accepted_and_the_first_names_the_default_rp(api: Api):
    user_id = await api.human()
    default = await api.call("POST", f"/v2/users/{user_id}/passkeys", body={})
    assert default.status == 200, default.body
    rp = public_key_options(default.body["publicKeyCredentialCreationOptions"])["rp"]["id"]
    assert rp == "accounts.example.org"

    user_id, auth, _ = await passkey_user(api)  # login.example.com, the second origin
    sid, options = await challenged(api, user_id)
    assert (await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN)))).status == 200
    sid, options = await challenged(api, user_id)
    refused = await api.set(sid, check(auth.get(options, "https://other.example.org")))
    assert_error(refused, 400, 3, "WEBAU-3M9si")


@pytest.mark.settings(rate_limit_user="2/1m")
async def test_webauthn_checks_count_toward_the_users_credential_rate(api: Api, redis: Any):
    """An assertion is a credential check like a password: past the user's rate, 429.

    The refused attempt still used its challenge up, as every failed attempt does.
    """
    user_id, auth, _ = await passkey_user(api)
    sids, replies, challenges = [], [], []
    for _ in range(3):
        sid, options = await challenged(api, user_id)
        sids.append(sid)
        challenges.append(options["publicKey"]["challenge"])
        replies.append(await api.set(sid, check(auth.get(options, WEBAUTHN_ORIGIN))))

    assert [reply.status for reply in replies] == [200, 200, 429], [r.body for r in replies]
    assert replies[2].error_id == "COMMAND-rateLimit"
    assert set((await session(api, sids[2]))["factors"]) == {"user"}
    assert await redis.exists(keys.used_webauthn_challenge(user_id, challenges[2])) == 1
