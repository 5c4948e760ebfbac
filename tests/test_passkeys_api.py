"""The User API's passkeys and U2F keys end to end: real server, real Redis, real signatures.

Every credential comes from ``tests.webauthn_authenticator`` (a software authenticator proven
against py_webauthn), so what the server accepts is what a browser would post. Covered:
registration options, verification (and its single-use, expiring challenge), listing and
removal, the registration link code, who may call (own session token, PATs, another user's
session never), bad input (always a 400 with ZITADEL's body and never a ready token), the
list of ready methods, the same RPCs over Connect, and events without secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from storage import keys
from tests.driven import DrivenClock, drive_app_clock
from tests.support import ADMIN_TOKEN, PASSWORD, RP_ID, WEBAUTHN_ORIGIN, Api, Reply
from tests.webauthn_authenticator import (
    FLAG_UV,
    Algorithm,
    SoftAuthenticator,
    authenticator_flags,
    b64u,
    b64u_decode,
    public_key_options,
    tamper_client_data,
    truncate,
)

pytestmark = pytest.mark.asyncio

USERS = "/v2/users"
CONNECT = "/zitadel.user.v2.UserService"
M = "AUTHENTICATION_METHOD_TYPE_"
READY = "AUTH_FACTOR_STATE_READY"
ALGORITHMS = [Algorithm.ES256, Algorithm.EDDSA]
UNPADDED_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
#: Five minutes, the advertised ``timeout`` of every options object.
CHALLENGE_TTL_MS = 300_000

Client = TestClient[web.Request, web.Application]


@pytest.fixture(name="clock")
def _clock(monkeypatch: pytest.MonkeyPatch) -> DrivenClock:
    return drive_app_clock(monkeypatch)


@pytest.fixture(name="client")
async def _client_on_a_driven_clock(clock: DrivenClock, client: Client) -> Client:
    """The suite's app, created after ``clock`` became its clock (challenge expiry)."""
    return client


# -- helpers (also used by tests/test_webauthn_session.py) -------------------------------------
def assert_error(reply: Reply, status: int, code: int, error_id: str | None = None) -> None:
    """ZITADEL's REST error body; with ``error_id``, its one ``ErrorDetail`` names it."""
    assert reply.status == status, reply.body
    assert reply.body["code"] == code, reply.body
    assert isinstance(reply.body["message"], str)
    assert reply.body["message"]
    if error_id is not None:
        assert reply.error_id == error_id, reply.body
        detail = reply.body["details"][0]
        assert detail["@type"] == "type.googleapis.com/zitadel.v1.ErrorDetail"
        assert reply.body["message"].endswith(f"({error_id})")


def creation_options(reply: Reply) -> dict[str, Any]:
    """The inner ``publicKey`` creation options of a RegisterPasskey / RegisterU2F reply."""
    return public_key_options(reply.body["publicKeyCredentialCreationOptions"])


async def start_passkey(api: Api, user_id: str, token: str = ADMIN_TOKEN, **body: Any) -> Reply:
    return await api.call("POST", f"{USERS}/{user_id}/passkeys", token, {"domain": RP_ID, **body})


async def verify_passkey(
    api: Api,
    user_id: str,
    passkey_id: str,
    credential: Any,
    token: str = ADMIN_TOKEN,
    name: Any = "my key",
) -> Reply:
    return await api.call(
        "POST",
        f"{USERS}/{user_id}/passkeys/{passkey_id}",
        token,
        {"publicKeyCredential": credential, "passkeyName": name},
    )


#: Per kind: the collection under /v2/users/{id}, the id field, the name field, a name.
_KINDS = {
    "passkeys": ("passkeyId", "passkeyName", "my key"),
    "u2f": ("u2fId", "tokenName", "security key"),
}


async def _register(
    api: Api, user_id: str, auth: SoftAuthenticator, kind: str, algorithm: Algorithm, token: str
) -> tuple[str, str]:
    """Register* + Verify*Registration of ``kind``; (token id, credential id)."""
    id_field, name_field, name = _KINDS[kind]
    started = await api.call("POST", f"{USERS}/{user_id}/{kind}", token, {"domain": RP_ID})
    assert started.status == 200, started.body
    credential = auth.create(
        started.body["publicKeyCredentialCreationOptions"], WEBAUTHN_ORIGIN, algorithm=algorithm
    )
    token_id = str(started.body[id_field])
    verified = await api.call(
        "POST",
        f"{USERS}/{user_id}/{kind}/{token_id}",
        token,
        {"publicKeyCredential": credential, name_field: name},
    )
    assert verified.status == 200, verified.body
    return token_id, str(credential["id"])


async def register_passkey(
    api: Api,
    user_id: str,
    auth: SoftAuthenticator,
    algorithm: Algorithm = Algorithm.ES256,
    token: str = ADMIN_TOKEN,
) -> tuple[str, str]:
    """RegisterPasskey + VerifyPasskeyRegistration; (passkey id, credential id)."""
    return await _register(api, user_id, auth, "passkeys", algorithm, token)


async def start_u2f(api: Api, user_id: str, token: str = ADMIN_TOKEN) -> Reply:
    return await api.call("POST", f"{USERS}/{user_id}/u2f", token, {"domain": RP_ID})


async def register_u2f(
    api: Api,
    user_id: str,
    auth: SoftAuthenticator,
    algorithm: Algorithm = Algorithm.ES256,
    token: str = ADMIN_TOKEN,
) -> tuple[str, str]:
    """RegisterU2F + VerifyU2FRegistration; (u2f id, credential id)."""
    return await _register(api, user_id, auth, "u2f", algorithm, token)


def security_key() -> SoftAuthenticator:
    """A U2F-style roaming key: no user verification, no resident credentials."""
    return SoftAuthenticator(user_verifying=False, attachment="cross-platform", transports=("usb",))


async def list_passkeys(api: Api, user_id: str, token: str = ADMIN_TOKEN) -> Reply:
    reply = await api.call("POST", f"{USERS}/{user_id}/passkeys/_search", token, {})
    assert reply.status == 200, reply.body
    return reply


async def ready_passkeys(api: Api, user_id: str) -> list[dict[str, Any]]:
    result = (await list_passkeys(api, user_id)).body.get("result", [])
    return [entry for entry in result if entry["state"] == READY]


async def methods(api: Api, user_id: str) -> list[str]:
    reply = await api.call("GET", f"{USERS}/{user_id}/authentication_methods")
    assert reply.status == 200, reply.body
    return [name.removeprefix(M) for name in reply.body.get("authMethodTypes", [])]


async def user_events(redis: Any, user_id: str) -> list[str]:
    stream = keys.event_stream(keys.event_partition(user_id, 16))
    return [
        entry[b"type"].decode()
        for _, entry in await redis.xrange(stream)
        if entry[b"aggregateId"] == user_id.encode()
    ]


async def everything_stored(redis: Any) -> bytes:
    """Every stream entry and every hash/string value in the database, concatenated."""
    out = bytearray()
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        if kind == "stream":
            for _, entry in await redis.xrange(key):
                out += b" ".join(entry.values()) + b"\n"
        elif kind == "hash":
            out += b" ".join((await redis.hgetall(key)).values()) + b"\n"
        elif kind == "string":
            out += (await redis.get(key)) or b""
            out += b"\n"
    return bytes(out)


async def connect(client: Client, method: str, body: Any, token: str = ADMIN_TOKEN):
    """One Connect unary call with the JSON codec; (status, JSON body)."""
    response = await client.post(
        f"{CONNECT}/{method}",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return response.status, await response.json()


# -- RegisterPasskey: the options ----------------------------------------------------------------
async def test_register_passkey_returns_creation_options_for_a_resident_uv_credential(api: Api):
    user_id = await api.human()

    reply = await start_passkey(api, user_id)

    assert reply.status == 200, reply.body
    assert reply.body["passkeyId"]
    assert reply.body["details"]["sequence"]
    options = creation_options(reply)
    assert options["rp"]["id"] == RP_ID
    assert isinstance(options["rp"]["name"], str)
    assert options["rp"]["name"]
    assert UNPADDED_B64URL.match(options["user"]["id"])
    assert options["user"]["name"]
    assert options["user"]["displayName"]
    assert UNPADDED_B64URL.match(options["challenge"])
    assert len(b64u_decode(options["challenge"])) >= 16
    algs = {param["alg"] for param in options["pubKeyCredParams"]}
    assert {-7, -8} <= algs
    assert all(param["type"] == "public-key" for param in options["pubKeyCredParams"])
    assert options["timeout"] == CHALLENGE_TTL_MS
    assert options.get("excludeCredentials", []) == []
    selection = options["authenticatorSelection"]
    assert selection["residentKey"] == "required"
    assert selection["requireResidentKey"] is True
    assert selection["userVerification"] == "required"
    assert "authenticatorAttachment" not in selection
    assert options["attestation"] == "none"
    assert await ready_passkeys(api, user_id) == []  # nothing ready before the verification
    assert "PASSKEY" not in await methods(api, user_id)


async def test_every_registration_gets_its_own_challenge(api: Api):
    user_id = await api.human()
    first = creation_options(await start_passkey(api, user_id))
    second = creation_options(await start_passkey(api, user_id))
    assert first["challenge"] != second["challenge"]
    assert first["user"]["id"] == second["user"]["id"]  # one user handle per user


@pytest.mark.parametrize(
    ("authenticator", "attachment"),
    [
        ("PASSKEY_AUTHENTICATOR_PLATFORM", "platform"),
        ("PASSKEY_AUTHENTICATOR_CROSS_PLATFORM", "cross-platform"),
        ("PASSKEY_AUTHENTICATOR_UNSPECIFIED", None),
    ],
)
async def test_the_authenticator_choice_becomes_the_attachment(
    api: Api, authenticator: str, attachment: str | None
):
    user_id = await api.human()
    reply = await start_passkey(api, user_id, authenticator=authenticator)
    assert reply.status == 200, reply.body
    assert creation_options(reply)["authenticatorSelection"].get("authenticatorAttachment") == (
        attachment
    )


async def test_without_a_domain_the_rp_is_the_host_of_the_first_origin(api: Api):
    user_id = await api.human()
    reply = await api.call("POST", f"{USERS}/{user_id}/passkeys", body={})
    assert reply.status == 200, reply.body
    assert creation_options(reply)["rp"]["id"] == RP_ID


@pytest.mark.parametrize(
    "body",
    [
        {"authenticator": "PASSKEY_AUTHENTICATOR_NOPE"},
        {"authenticator": 7},
        {"authenticator": {"x": 1}},
        {"domain": "x" * 201},
        {"domain": 5},
        {"code": "not an object"},
        {"code": {"id": "", "code": ""}},
    ],
)
async def test_bad_register_passkey_input_is_400_and_writes_nothing(
    api: Api, redis: Any, body: dict[str, Any]
):
    user_id = await api.human()
    before = await redis.hgetall(keys.user(user_id))

    reply = await api.call("POST", f"{USERS}/{user_id}/passkeys", body={"domain": RP_ID, **body})

    assert reply.status == 400, reply.body
    assert reply.body["code"] in (3, 9), reply.body
    assert isinstance(reply.body["message"], str)
    assert await redis.hgetall(keys.user(user_id)) == before


async def test_register_passkey_for_an_unknown_user_is_404(api: Api):
    reply = await api.call("POST", f"{USERS}/424242424242/passkeys", body={"domain": RP_ID})
    assert reply.status == 404, reply.body


# -- VerifyPasskeyRegistration ---------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_verified_passkey_is_listed_ready_and_is_an_authentication_method(
    api: Api, redis: Any, algorithm: Algorithm
):
    user_id = await api.human()
    auth = SoftAuthenticator()
    started = await start_passkey(api, user_id)
    credential = auth.create(creation_options(started), WEBAUTHN_ORIGIN, algorithm=algorithm)
    assert authenticator_flags(credential) & FLAG_UV

    verified = await verify_passkey(api, user_id, started.body["passkeyId"], credential)

    assert verified.status == 200, verified.body
    assert verified.body["details"]["sequence"]
    listed = await list_passkeys(api, user_id)
    assert listed.body["details"]["totalResult"] == "1"
    assert listed.body["result"] == [
        {"id": started.body["passkeyId"], "state": READY, "name": "my key"}
    ]
    assert "PASSKEY" in await methods(api, user_id)
    assert "U2F" not in await methods(api, user_id)
    events = await user_events(redis, user_id)
    assert "user.human.passwordless.token.added" in events
    assert events[-1] == "user.human.passwordless.token.verified"


async def test_a_second_registration_excludes_the_first_credential(api: Api):
    user_id = await api.human()
    auth = SoftAuthenticator()
    _, first = await register_passkey(api, user_id, auth)

    options = creation_options(await start_passkey(api, user_id))

    assert [item["id"] for item in options["excludeCredentials"]] == [first]
    assert all(item["type"] == "public-key" for item in options["excludeCredentials"])
    second, _ = await register_passkey(api, user_id, SoftAuthenticator(), Algorithm.EDDSA)
    ready = await ready_passkeys(api, user_id)
    assert len(ready) == 2
    assert second in {entry["id"] for entry in ready}


async def test_a_registration_challenge_is_single_use(api: Api):
    user_id = await api.human()
    auth = SoftAuthenticator()
    started = await start_passkey(api, user_id)
    options = creation_options(started)
    passkey_id = started.body["passkeyId"]
    assert (
        await verify_passkey(api, user_id, passkey_id, auth.create(options, WEBAUTHN_ORIGIN))
    ).status == 200

    again = await verify_passkey(
        api, user_id, passkey_id, SoftAuthenticator().create(options, WEBAUTHN_ORIGIN), name="x"
    )

    assert again.status == 400, again.body
    assert again.body["code"] in (3, 9)
    listed = await list_passkeys(api, user_id)
    assert [(e["id"], e["name"]) for e in listed.body["result"]] == [(passkey_id, "my key")]


async def test_a_failed_verification_uses_the_challenge_up(api: Api):
    user_id = await api.human()
    auth = SoftAuthenticator()
    started = await start_passkey(api, user_id)
    options = creation_options(started)
    passkey_id = started.body["passkeyId"]

    wrong = await verify_passkey(
        api, user_id, passkey_id, auth.create(options, "https://evil.example")
    )
    right = await verify_passkey(api, user_id, passkey_id, auth.create(options, WEBAUTHN_ORIGIN))

    assert_error(wrong, 400, 3, "WEBAU-sKf8s")
    assert right.status == 400, right.body
    assert await ready_passkeys(api, user_id) == []


async def test_a_registration_expires_after_five_minutes(api: Api, clock: DrivenClock):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)
    clock.advance(CHALLENGE_TTL_MS + 1_000)

    late = await verify_passkey(api, user_id, started.body["passkeyId"], credential)

    assert late.status == 400, late.body
    assert late.body["code"] in (3, 9)
    assert await ready_passkeys(api, user_id) == []


async def test_verifying_an_unknown_or_already_verified_passkey(api: Api):
    user_id = await api.human()
    auth = SoftAuthenticator()
    passkey_id, _ = await register_passkey(api, user_id, auth)
    options = creation_options(await start_passkey(api, user_id))

    unknown = await verify_passkey(
        api, user_id, "31415926535", SoftAuthenticator().create(options, WEBAUTHN_ORIGIN)
    )
    verified_again = await verify_passkey(
        api, user_id, passkey_id, SoftAuthenticator().create(options, WEBAUTHN_ORIGIN)
    )

    assert unknown.status == 404, unknown.body
    assert verified_again.status == 400, verified_again.body
    assert (await list_passkeys(api, user_id)).body["details"]["totalResult"] in ("1", "2")
    assert len(await ready_passkeys(api, user_id)) == 1


async def test_a_passkey_registration_without_user_verification_is_refused(api: Api):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN, uv=False)

    reply = await verify_passkey(api, user_id, started.body["passkeyId"], credential)

    assert_error(reply, 400, 3, "WEBAU-sKf8s")
    assert await ready_passkeys(api, user_id) == []


def _garbage_attestation(credential: dict[str, Any]) -> dict[str, Any]:
    credential["response"]["attestationObject"] = b64u(os.urandom(120))
    return credential


def _bad_base64(credential: dict[str, Any]) -> dict[str, Any]:
    credential["response"]["clientDataJSON"] = "!!not*base64url!!"
    return credential


def _no_response(credential: dict[str, Any]) -> dict[str, Any]:
    del credential["response"]
    return credential


def _other_challenge(credential: dict[str, Any]) -> dict[str, Any]:
    return tamper_client_data(credential, challenge=b64u(os.urandom(32)))


def _get_ceremony(credential: dict[str, Any]) -> dict[str, Any]:
    return tamper_client_data(credential, type="webauthn.get")


#: (name, how the credential is spoilt, the error id the contract names or None)
BAD_CREDENTIALS = [
    ("truncated", lambda c: truncate(c, ["attestationObject"]), "WEBAU-sKf8s"),
    ("truncated-client-data", lambda c: truncate(c, ["clientDataJSON"]), "WEBAU-sKf8s"),
    ("bad-base64", _bad_base64, "WEBAU-sKf8s"),
    ("garbage-attestation", _garbage_attestation, "WEBAU-sKf8s"),
    ("other-challenge", _other_challenge, "WEBAU-sKf8s"),
    ("get-ceremony", _get_ceremony, "WEBAU-sKf8s"),
    ("no-response", _no_response, None),
]


@pytest.mark.parametrize(
    ("spoil", "error_id"),
    [(spoil, error_id) for _, spoil, error_id in BAD_CREDENTIALS],
    ids=[name for name, _, _ in BAD_CREDENTIALS],
)
async def test_a_bad_credential_is_400_and_nothing_becomes_ready(
    api: Api, spoil: Any, error_id: str | None
):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    credential = spoil(SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN))

    reply = await verify_passkey(api, user_id, started.body["passkeyId"], credential)

    assert_error(reply, 400, 3, error_id)
    assert await ready_passkeys(api, user_id) == []
    assert "PASSKEY" not in await methods(api, user_id)


@pytest.mark.parametrize(
    "credential",
    ["a string", 12, ["an", "array"], None, True],
    ids=["string", "number", "array", "null", "bool"],
)
async def test_a_credential_that_is_not_an_object_is_400(api: Api, credential: Any):
    user_id = await api.human()
    started = await start_passkey(api, user_id)

    reply = await verify_passkey(api, user_id, started.body["passkeyId"], credential)

    assert_error(reply, 400, 3)
    assert await ready_passkeys(api, user_id) == []


@pytest.mark.parametrize(
    ("origin", "rp_id"),
    [
        ("https://evil.example", None),
        ("http://login.example.com", None),  # same host, not the configured scheme
        ("https://login.example.com:8443", None),
        (WEBAUTHN_ORIGIN, "evil.example"),
        (WEBAUTHN_ORIGIN, "example.com"),
    ],
)
async def test_a_credential_for_the_wrong_origin_or_rp_is_refused(
    api: Api, origin: str, rp_id: str | None
):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    credential = SoftAuthenticator().create(creation_options(started), origin, rp_id=rp_id)

    reply = await verify_passkey(api, user_id, started.body["passkeyId"], credential)

    assert_error(reply, 400, 3, "WEBAU-sKf8s")
    assert await ready_passkeys(api, user_id) == []


@pytest.mark.parametrize("name", ["x" * 201, "", 42, None])
async def test_a_bad_passkey_name_is_400_and_nothing_becomes_ready(api: Api, name: Any):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)

    reply = await verify_passkey(api, user_id, started.body["passkeyId"], credential, name=name)

    assert_error(reply, 400, 3)
    assert await ready_passkeys(api, user_id) == []


async def test_a_name_of_200_characters_is_accepted(api: Api):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)
    name = "ü" * 200  # characters, not bytes

    reply = await verify_passkey(api, user_id, started.body["passkeyId"], credential, name=name)

    assert reply.status == 200, reply.body
    assert [entry["name"] for entry in await ready_passkeys(api, user_id)] == [name]


async def test_a_credential_already_registered_by_another_user_is_refused(api: Api):
    """The same authenticator answering a second user's options with its existing key is not
    possible in a browser; a client replaying another user's attestation must not bind it."""
    alice, bob = await api.human(), await api.human()
    started = await start_passkey(api, alice)
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)
    assert (await verify_passkey(api, alice, started.body["passkeyId"], credential)).status == 200
    theirs = await start_passkey(api, bob)

    reply = await verify_passkey(api, bob, theirs.body["passkeyId"], credential)

    assert reply.status == 400, reply.body
    assert await ready_passkeys(api, bob) == []


# -- RemovePasskey -------------------------------------------------------------------------------
async def test_remove_passkey(api: Api, redis: Any):
    user_id = await api.human()
    passkey_id, _ = await register_passkey(api, user_id, SoftAuthenticator())

    removed = await api.call("DELETE", f"{USERS}/{user_id}/passkeys/{passkey_id}")
    again = await api.call("DELETE", f"{USERS}/{user_id}/passkeys/{passkey_id}")
    unknown = await api.call("DELETE", f"{USERS}/{user_id}/passkeys/27182818284")

    assert removed.status == 200, removed.body
    assert removed.body["details"]["sequence"]
    assert again.status == 404, again.body
    assert unknown.status == 404, unknown.body
    assert (await list_passkeys(api, user_id)).body["details"]["totalResult"] == "0"
    assert "PASSKEY" not in await methods(api, user_id)
    assert (await user_events(redis, user_id))[-1] == "user.human.passwordless.token.removed"


# -- CreatePasskeyRegistrationLink ------------------------------------------------------------
async def registration_code(api: Api, user_id: str) -> dict[str, str]:
    reply = await api.call(
        "POST", f"{USERS}/{user_id}/passkeys/registration_link", body={"returnCode": {}}
    )
    assert reply.status == 200, reply.body
    code = reply.body["code"]
    assert code["id"]
    assert code["code"]
    return {"id": str(code["id"]), "code": str(code["code"])}


async def test_a_user_without_a_session_registers_a_first_passkey_with_a_link_code(
    api: Api, redis: Any
):
    user_id = await api.human(password=None)
    _, login_client = await api.machine_with_pat(["IAM_LOGIN_CLIENT"])
    code = await registration_code(api, user_id)
    auth = SoftAuthenticator()

    started = await start_passkey(api, user_id, login_client, code=code)
    assert started.status == 200, started.body
    credential = auth.create(creation_options(started), WEBAUTHN_ORIGIN)
    verified = await verify_passkey(
        api, user_id, started.body["passkeyId"], credential, login_client
    )
    reused = await start_passkey(api, user_id, login_client, code=code)

    assert verified.status == 200, verified.body
    assert [entry["id"] for entry in await ready_passkeys(api, user_id)] == [
        started.body["passkeyId"]
    ]
    assert reused.status == 400, reused.body  # the code is single use
    assert reused.body["code"] in (3, 9)
    assert code["code"].encode() not in await everything_stored(redis)  # kept hashed or sealed


async def test_a_link_code_lets_a_caller_without_user_write_start_a_registration(api: Api):
    user_id = await api.human()
    _, plain_machine = await api.machine_with_pat([])
    code = await registration_code(api, user_id)

    without = await start_passkey(api, user_id, plain_machine)
    wrong = await start_passkey(api, user_id, plain_machine, code={**code, "code": "WRONG"})
    with_code = await start_passkey(api, user_id, plain_machine, code=code)

    assert without.status == 403, without.body
    assert wrong.status in (400, 403), wrong.body
    assert with_code.status == 200, with_code.body
    assert creation_options(with_code)["rp"]["id"] == RP_ID


async def test_a_link_code_belongs_to_its_user(api: Api):
    alice, bob = await api.human(), await api.human()
    _, login_client = await api.machine_with_pat(["IAM_LOGIN_CLIENT"])
    code = await registration_code(api, alice)

    reply = await start_passkey(api, bob, login_client, code=code)

    assert reply.status in (400, 404), reply.body
    assert (await start_passkey(api, alice, login_client, code=code)).status == 200


@pytest.mark.settings(smtp_host="127.0.0.1")
async def test_send_link_queues_a_mail_and_returns_no_code(api: Api, redis: Any):
    user_id = await api.human()

    reply = await api.call(
        "POST",
        f"{USERS}/{user_id}/passkeys/registration_link",
        body={"sendLink": {"urlTemplate": "https://login.example.com/passkey?code={{.Code}}"}},
    )

    assert reply.status == 200, reply.body
    assert "code" not in reply.body
    assert await redis.xlen(keys.OUTBOX) == 1


# -- U2F -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_u2f_registration_lifecycle(api: Api, redis: Any, algorithm: Algorithm):
    user_id = await api.human()
    key = security_key()

    started = await start_u2f(api, user_id)
    assert started.status == 200, started.body
    options = creation_options(started)
    assert options["rp"]["id"] == RP_ID
    assert options["timeout"] == CHALLENGE_TTL_MS
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "discouraged"
    assert options["authenticatorSelection"]["residentKey"] == "discouraged"
    assert "U2F" not in await methods(api, user_id)  # not before it is verified
    credential = key.create(options, WEBAUTHN_ORIGIN, algorithm=algorithm)
    assert authenticator_flags(credential) & FLAG_UV == 0  # U2F needs no user verification
    u2f_id = started.body["u2fId"]
    verified = await api.call(
        "POST",
        f"{USERS}/{user_id}/u2f/{u2f_id}",
        body={"publicKeyCredential": credential, "tokenName": "yubi"},
    )
    assert verified.status == 200, verified.body
    assert "U2F" in await methods(api, user_id)
    assert "PASSKEY" not in await methods(api, user_id)
    assert (await list_passkeys(api, user_id)).body["details"]["totalResult"] == "0"
    excluded = creation_options(await start_u2f(api, user_id))["excludeCredentials"]
    assert [item["id"] for item in excluded] == [credential["id"]]

    removed = await api.call("DELETE", f"{USERS}/{user_id}/u2f/{u2f_id}")
    again = await api.call("DELETE", f"{USERS}/{user_id}/u2f/{u2f_id}")

    assert removed.status == 200, removed.body
    assert again.status == 404, again.body
    assert "U2F" not in await methods(api, user_id)
    events = await user_events(redis, user_id)
    assert "user.human.mfa.u2f.token.added" in events
    assert "user.human.mfa.u2f.token.verified" in events
    assert events[-1] == "user.human.mfa.u2f.token.removed"


async def test_a_u2f_registration_is_single_use_and_checks_the_origin(api: Api):
    user_id = await api.human()
    key = security_key()
    started = await start_u2f(api, user_id)
    options = creation_options(started)
    url = f"{USERS}/{user_id}/u2f/{started.body['u2fId']}"

    wrong = await api.call(
        "POST",
        url,
        body={
            "publicKeyCredential": key.create(options, "https://evil.example"),
            "tokenName": "k",
        },
    )
    right = await api.call(
        "POST",
        url,
        body={"publicKeyCredential": key.create(options, WEBAUTHN_ORIGIN), "tokenName": "k"},
    )

    assert_error(wrong, 400, 3, "WEBAU-sKf8s")
    assert right.status == 400, right.body
    assert "U2F" not in await methods(api, user_id)


@pytest.mark.parametrize("credential", ["x", {"id": "abc"}, [1]])
async def test_a_bad_u2f_credential_is_400(api: Api, credential: Any):
    user_id = await api.human()
    started = await start_u2f(api, user_id)

    reply = await api.call(
        "POST",
        f"{USERS}/{user_id}/u2f/{started.body['u2fId']}",
        body={"publicKeyCredential": credential, "tokenName": "k"},
    )

    assert_error(reply, 400, 3)
    assert "U2F" not in await methods(api, user_id)


async def test_u2f_token_name_over_200_characters_is_400(api: Api):
    user_id = await api.human()
    started = await start_u2f(api, user_id)
    credential = security_key().create(creation_options(started), WEBAUTHN_ORIGIN)

    reply = await api.call(
        "POST",
        f"{USERS}/{user_id}/u2f/{started.body['u2fId']}",
        body={"publicKeyCredential": credential, "tokenName": "k" * 201},
    )

    assert_error(reply, 400, 3)
    assert "U2F" not in await methods(api, user_id)


async def test_remove_unknown_u2f_is_404(api: Api):
    user_id = await api.human()
    reply = await api.call("DELETE", f"{USERS}/{user_id}/u2f/11235813")
    assert reply.status == 404, reply.body


# -- who may call -------------------------------------------------------------------------------
async def test_self_service_with_the_users_own_session_token(api: Api):
    user_id = await api.human()
    token = (await api.session_for(user_id)).body["sessionToken"]

    listed_before = await list_passkeys(api, user_id, token)
    passkey_id, _ = await register_passkey(api, user_id, SoftAuthenticator(), token=token)

    assert listed_before.body["details"]["totalResult"] == "0"
    assert [entry["id"] for entry in await ready_passkeys(api, user_id)] == [passkey_id]
    assert "PASSKEY" in await methods(api, user_id)
    # with a ready passkey the password-only token is no bearer any more (MFA)
    after = await api.call("POST", f"{USERS}/{user_id}/passkeys/_search", token, {})
    assert after.status == 401, after.body


async def test_self_service_u2f_with_the_users_own_session_token(api: Api):
    user_id = await api.human()
    token = (await api.session_for(user_id)).body["sessionToken"]

    await register_u2f(api, user_id, security_key(), token=token)

    assert "U2F" in await methods(api, user_id)


async def test_another_users_session_token_is_403_everywhere(api: Api):
    victim, attacker = await api.human(), await api.human()
    passkey_id, _ = await register_passkey(api, victim, SoftAuthenticator())
    started = await start_passkey(api, victim)
    token = (await api.session_for(attacker)).body["sessionToken"]
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)
    base = f"{USERS}/{victim}"

    replies = {
        "register": await start_passkey(api, victim, token),
        "verify": await verify_passkey(api, victim, started.body["passkeyId"], credential, token),
        "list": await api.call("POST", f"{base}/passkeys/_search", token, {}),
        "remove": await api.call("DELETE", f"{base}/passkeys/{passkey_id}", token),
        "link": await api.call(
            "POST", f"{base}/passkeys/registration_link", token, {"returnCode": {}}
        ),
        "u2f": await api.call("POST", f"{base}/u2f", token, {"domain": RP_ID}),
    }

    assert {name: reply.status for name, reply in replies.items()} == dict.fromkeys(replies, 403)
    assert [entry["id"] for entry in await ready_passkeys(api, victim)] == [passkey_id]


async def test_another_user_cannot_probe_registrations_by_id(api: Api):
    """Unknown, verified and pending ids all answer 403: the state is not the caller's to learn."""
    victim, attacker = await api.human(), await api.human()
    ready_id, _ = await register_passkey(api, victim, SoftAuthenticator())
    started = await start_passkey(api, victim)
    token = (await api.session_for(attacker)).body["sessionToken"]
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)

    for passkey_id in ("518000000000000001", ready_id, str(started.body["passkeyId"])):
        reply = await verify_passkey(api, victim, passkey_id, credential, token)
        assert (reply.status, reply.body["code"]) == (403, 7), (passkey_id, reply.body)


async def test_a_pat_with_user_write_on_another_org_is_403(api: Api):
    org = await api.org()
    _, manager = await api.machine_with_pat(["ORG_USER_MANAGER"], org_id=org)
    user_id = await api.human()
    reply = await start_passkey(api, user_id, manager)
    assert reply.status == 403, reply.body


# -- Connect ---------------------------------------------------------------------------------
async def test_the_passkey_rpcs_over_connect(client: Client, api: Api):
    user_id = await api.human()
    auth = SoftAuthenticator()

    status, started = await connect(client, "RegisterPasskey", {"userId": user_id, "domain": RP_ID})
    assert status == 200, started
    options = started["publicKeyCredentialCreationOptions"]
    credential = auth.create(options, WEBAUTHN_ORIGIN, algorithm=Algorithm.EDDSA)
    status, verified = await connect(
        client,
        "VerifyPasskeyRegistration",
        {
            "userId": user_id,
            "passkeyId": started["passkeyId"],
            "publicKeyCredential": credential,
            "passkeyName": "connect key",
        },
    )
    assert status == 200, verified
    status, listed = await connect(client, "ListPasskeys", {"userId": user_id})
    assert status == 200, listed
    assert listed["result"] == [{"id": started["passkeyId"], "state": READY, "name": "connect key"}]
    status, kinds = await connect(client, "ListAuthenticationMethodTypes", {"userId": user_id})
    assert status == 200, kinds
    assert f"{M}PASSKEY" in kinds["authMethodTypes"]
    status, link = await connect(
        client, "CreatePasskeyRegistrationLink", {"userId": user_id, "returnCode": {}}
    )
    assert status == 200, link
    assert link["code"]["code"]
    status, removed = await connect(
        client, "RemovePasskey", {"userId": user_id, "passkeyId": started["passkeyId"]}
    )
    assert status == 200, removed
    assert f"{M}PASSKEY" not in await methods(api, user_id)


async def test_the_u2f_rpcs_over_connect(client: Client, api: Api):
    user_id = await api.human()
    status, started = await connect(client, "RegisterU2F", {"userId": user_id, "domain": RP_ID})
    assert status == 200, started
    credential = security_key().create(
        started["publicKeyCredentialCreationOptions"], WEBAUTHN_ORIGIN
    )
    status, verified = await connect(
        client,
        "VerifyU2FRegistration",
        {
            "userId": user_id,
            "u2fId": started["u2fId"],
            "publicKeyCredential": credential,
            "tokenName": "connect key",
        },
    )
    assert status == 200, verified
    assert "U2F" in await methods(api, user_id)
    status, removed = await connect(
        client, "RemoveU2F", {"userId": user_id, "u2fId": started["u2fId"]}
    )
    assert status == 200, removed
    assert "U2F" not in await methods(api, user_id)


async def test_a_bad_credential_over_connect_is_invalid_argument(client: Client, api: Api):
    user_id = await api.human()
    status, started = await connect(client, "RegisterPasskey", {"userId": user_id, "domain": RP_ID})
    assert status == 200, started
    credential = SoftAuthenticator().create(
        started["publicKeyCredentialCreationOptions"], "https://evil.example"
    )

    status, body = await connect(
        client,
        "VerifyPasskeyRegistration",
        {
            "userId": user_id,
            "passkeyId": started["passkeyId"],
            "publicKeyCredential": credential,
            "passkeyName": "k",
        },
    )

    assert status == 400, body
    assert body["code"] == "invalid_argument"
    assert body["message"].endswith("(WEBAU-sKf8s)")
    assert body["details"][0]["debug"]["id"] == "WEBAU-sKf8s"
    assert await ready_passkeys(api, user_id) == []


async def test_connect_refuses_another_users_session_and_a_non_object_credential(
    client: Client, api: Api
):
    victim, attacker = await api.human(), await api.human()
    token = (await api.session_for(attacker)).body["sessionToken"]
    status, denied = await connect(
        client, "RegisterPasskey", {"userId": victim, "domain": RP_ID}, token
    )
    status_shape, shape = await connect(
        client,
        "VerifyPasskeyRegistration",
        {"userId": victim, "passkeyId": "1", "publicKeyCredential": "x", "passkeyName": "k"},
    )
    assert (status, denied["code"]) == (403, "permission_denied")
    assert (status_shape, shape["code"]) == (400, "invalid_argument")


# -- races and secrets -------------------------------------------------------------------------
async def test_one_registration_verified_concurrently_becomes_one_ready_passkey(api: Api):
    user_id = await api.human()
    started = await start_passkey(api, user_id)
    options = creation_options(started)
    credentials = [SoftAuthenticator().create(options, WEBAUTHN_ORIGIN) for _ in range(10)]

    replies = await asyncio.gather(
        *(
            verify_passkey(api, user_id, started.body["passkeyId"], credential)
            for credential in credentials
        )
    )

    statuses = [reply.status for reply in replies]
    assert statuses.count(200) == 1, [(r.status, r.error_id) for r in replies]
    assert set(statuses) == {200, 400}, [(r.status, r.error_id) for r in replies]
    assert len(await ready_passkeys(api, user_id)) == 1


async def test_registration_stores_and_streams_no_secrets(api: Api, redis: Any):
    user_id = await api.human()
    token = (await api.session_for(user_id)).body["sessionToken"]
    code = await registration_code(api, user_id)
    started = await start_passkey(api, user_id, token)
    credential = SoftAuthenticator().create(creation_options(started), WEBAUTHN_ORIGIN)
    verified = await verify_passkey(api, user_id, started.body["passkeyId"], credential, token)
    assert verified.status == 200, verified.body

    stored = await everything_stored(redis)

    assert token.encode() not in stored
    assert PASSWORD.encode() not in stored
    assert code["code"].encode() not in stored
