"""The User API's second factors end to end: real server, real Redis, real TOTP codes.

TOTP, OTP SMS / Email, recovery codes and the list of ready methods, on REST and Connect:
ZITADEL's ids for each refusal, who may call, and what is stored (a sealed seed, only keyed
hashes of recovery codes) and streamed (events without secrets).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import pyotp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient

from app.services.sealing import Keyring
from storage import keys
from tests.support import ADMIN_TOKEN, MASTER_KEY, Api

USERS = "/v2/users"
CONNECT = "/zitadel.user.v2.UserService"
KEYRING = Keyring.from_text(MASTER_KEY)
M = "AUTHENTICATION_METHOD_TYPE_"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
RECOVERY_CODE = re.compile(r"^[A-Z0-9]{5}-[A-Z0-9]{5}$")


async def human(
    api: Api, *, phone: dict[str, Any] | None = None, email_verified: bool = True, **extra: Any
) -> str:
    username = f"user-{secrets.token_hex(4)}"
    body: dict[str, Any] = {
        "username": username,
        "profile": {"givenName": "Ada", "familyName": "Lovelace"},
        "email": {"email": f"{username}@example.com", "isVerified": email_verified},
        "password": {"password": "Corr3ct-Horse!"},
        **extra,
    }
    if phone is not None:
        body["phone"] = phone
    reply = await api.call("POST", f"{USERS}/human", body=body)
    assert reply.status == 201, reply.body
    return str(reply.body["userId"])


async def fields(redis, user_id: str) -> dict[str, str]:
    raw = await redis.hgetall(keys.user(user_id))
    return {key.decode(): value.decode() for key, value in raw.items()}


async def user_events(redis, user_id: str) -> list[str]:
    stream = keys.event_stream(keys.event_partition(user_id, 16))
    return [
        entry[b"type"].decode()
        for _, entry in await redis.xrange(stream)
        if entry[b"aggregateId"] == user_id.encode()
    ]


async def methods(api: Api, user_id: str, token: str = ADMIN_TOKEN) -> list[str]:
    reply = await api.call("GET", f"{USERS}/{user_id}/authentication_methods", token)
    assert reply.status == 200, reply.body
    return [name.removeprefix(M) for name in reply.body.get("authMethodTypes", [])]


async def register(api: Api, user_id: str, token: str = ADMIN_TOKEN) -> str:
    reply = await api.call("POST", f"{USERS}/{user_id}/totp", token, {})
    assert reply.status == 200, reply.body
    return str(reply.body["secret"])


async def verify(api: Api, user_id: str, secret: str, token: str = ADMIN_TOKEN) -> int:
    """Verifies with the current code; the step of that code."""
    step = int(time.time()) // 30
    code = pyotp.TOTP(secret).at(step * 30)
    reply = await api.call("POST", f"{USERS}/{user_id}/totp/verify", token, {"code": code})
    assert reply.status == 200, reply.body
    return step


async def session_token(api: Api, user_id: str) -> str:
    return str((await api.session_for(user_id)).body["sessionToken"])


async def connect(client: TestClient[web.Request, web.Application], method: str, body: Any):
    response = await client.post(
        f"{CONNECT}/{method}",
        json=body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    return response.status, await response.json()


# -- TOTP ----------------------------------------------------------------------------------


async def test_register_totp_returns_a_seed_and_an_otpauth_uri_and_stores_it_sealed(api, redis):
    user_id = await human(api)
    username = (await api.call("GET", f"{USERS}/{user_id}")).body["user"]["username"]

    reply = await api.call("POST", f"{USERS}/{user_id}/totp", body={})

    assert reply.status == 200, reply.body
    secret = reply.body["secret"]
    assert re.fullmatch("[A-Z2-7]{32}", secret)
    assert reply.body["uri"] == (
        f"otpauth://totp/localhost:{username}?secret={secret}&issuer=localhost"
    )
    assert reply.body["details"]["sequence"] == "3"
    stored = await fields(redis, user_id)
    assert secret not in json.dumps(stored)
    assert KEYRING.open(f"totp:{user_id}", stored["totp"]).decode() == secret
    assert "totp_ok" not in stored
    assert await methods(api, user_id) == ["PASSWORD"]  # not ready before it is verified


@pytest.mark.settings(domain="example.com")
async def test_the_issuer_is_the_instance_domain(api):
    user_id = await human(api)

    reply = await api.call("POST", f"{USERS}/{user_id}/totp", body={})

    assert pyotp.parse_uri(reply.body["uri"]).issuer == "example.com"


async def test_a_real_code_verifies_the_registration_and_uses_up_its_step(api, redis):
    user_id = await human(api)
    secret = await register(api, user_id)

    step = await verify(api, user_id, secret)

    stored = await fields(redis, user_id)
    assert (stored["totp_ok"], stored["totp_step"]) == ("1", str(step))
    assert await methods(api, user_id) == ["PASSWORD", "TOTP"]
    assert (await user_events(redis, user_id))[-2:] == [
        "user.human.mfa.otp.added",
        "user.human.mfa.otp.verified",
    ]


async def test_registering_again_before_verifying_replaces_the_seed(api, redis):
    user_id = await human(api)
    first = await register(api, user_id)
    second = await register(api, user_id)

    assert first != second
    stored = await fields(redis, user_id)
    assert KEYRING.open(f"totp:{user_id}", stored["totp"]).decode() == second


@pytest.mark.parametrize(
    ("code", "status", "error_id"),
    [
        ("000000x", 400, "EVENT-8isk2"),
        ("abcdef", 400, "EVENT-8isk2"),
        (None, 400, ""),  # no code: the request is invalid
        ("", 400, ""),
    ],
)
async def test_a_wrong_or_missing_code_is_refused_and_nothing_is_written(
    api, redis, code, status, error_id
):
    user_id = await human(api)
    await register(api, user_id)
    before = await fields(redis, user_id)

    body = {} if code is None else {"code": code}
    reply = await api.call("POST", f"{USERS}/{user_id}/totp/verify", body=body)

    assert (reply.status, reply.error_id) == (status, error_id)
    assert await fields(redis, user_id) == before


async def test_a_code_of_another_seed_is_invalid(api, redis):
    user_id = await human(api)
    await register(api, user_id)

    code = pyotp.TOTP(pyotp.random_base32()).now()
    reply = await api.call("POST", f"{USERS}/{user_id}/totp/verify", body={"code": code})

    assert (reply.status, reply.error_id) == (400, "EVENT-8isk2")
    assert "Invalid code" in reply.body["message"] or "InvalidCode" in reply.body["message"]


async def test_totp_state_errors(api):
    user_id = await human(api)

    not_registered = await api.call(
        "POST", f"{USERS}/{user_id}/totp/verify", body={"code": "123456"}
    )
    remove_missing = await api.call("DELETE", f"{USERS}/{user_id}/totp")
    secret = await register(api, user_id)
    await verify(api, user_id, secret)
    register_again = await api.call("POST", f"{USERS}/{user_id}/totp", body={})
    verify_again = await api.call(
        "POST", f"{USERS}/{user_id}/totp/verify", body={"code": pyotp.TOTP(secret).now()}
    )

    assert (not_registered.status, not_registered.error_id) == (404, "COMMAND-3Mif9s")
    assert (remove_missing.status, remove_missing.error_id) == (404, "COMMAND-Hd9sd")
    assert (register_again.status, register_again.error_id) == (409, "COMMAND-do9se")
    assert (verify_again.status, verify_again.error_id) == (400, "COMMAND-qx4ls")


async def test_remove_totp_drops_the_seed(api, redis):
    user_id = await human(api)
    await verify(api, user_id, await register(api, user_id))

    reply = await api.call("DELETE", f"{USERS}/{user_id}/totp")

    assert reply.status == 200, reply.body
    stored = await fields(redis, user_id)
    assert not {"totp", "totp_ok", "totp_step"} & stored.keys()
    assert await methods(api, user_id) == ["PASSWORD"]
    assert (await user_events(redis, user_id))[-1] == "user.human.mfa.otp.removed"


# -- AddHumanUser.totpSecret ---------------------------------------------------------------


async def test_an_imported_totp_secret_is_ready_at_once_and_sealed(api, redis):
    user_id = await human(api, totpSecret=SEED.lower())

    stored = await fields(redis, user_id)
    assert SEED not in json.dumps(stored)
    assert SEED.lower() not in json.dumps(stored)
    assert KEYRING.open(f"totp:{user_id}", stored["totp"]).decode() == SEED
    assert stored["totp_ok"] == "1"
    assert await methods(api, user_id) == ["PASSWORD", "TOTP"]
    assert await user_events(redis, user_id) == [
        "user.human.added",
        "user.human.email.verified",
        "user.human.mfa.otp.added",
        "user.human.mfa.otp.verified",
    ]


@pytest.mark.parametrize(
    "secret",
    ["", "not base32!", "JBSWY3DP", "A" * 201, SEED + "0", "JBSWY3DPEHPK3PXPJBSWY"],
)
async def test_an_invalid_totp_secret_is_400_and_creates_no_user(api, redis, secret):
    username = f"user-{secrets.token_hex(4)}"

    reply = await api.call(
        "POST",
        f"{USERS}/human",
        body={
            "username": username,
            "profile": {"givenName": "Ada", "familyName": "Lovelace"},
            "email": {"email": f"{username}@example.com", "isVerified": True},
            "totpSecret": secret,
        },
    )

    assert (reply.status, reply.body["code"]) == (400, 3), reply.body
    assert not await redis.exists(keys.login_name(username.lower()))


async def test_create_user_imports_a_totp_secret_too(api, redis):
    username = f"user-{secrets.token_hex(4)}"
    reply = await api.call(
        "POST",
        f"{USERS}/new",
        body={
            "username": username,
            "human": {
                "profile": {"givenName": "Ada", "familyName": "Lovelace"},
                "email": {"email": f"{username}@example.com", "isVerified": True},
                "totpSecret": SEED,
            },
        },
    )

    assert reply.status == 201, reply.body
    assert await methods(api, reply.body["id"]) == ["TOTP"]


# -- OTP SMS / Email -----------------------------------------------------------------------

VERIFIED_PHONE = {"phone": "+41790000000", "isVerified": True}


@pytest.mark.parametrize(
    ("path", "method", "field", "event", "already", "missing"),
    [
        ("otp_sms", "OTP_SMS", "otp_sms", "sms", "COMMAND-Ad3g2", "COMMAND-Sr3h3"),
        ("otp_email", "OTP_EMAIL", "otp_email", "email", "COMMAND-MKL2s", "COMMAND-b312D"),
    ],
)
async def test_otp_factor_lifecycle(api, redis, path, method, field, event, already, missing):
    user_id = await human(api, phone=VERIFIED_PHONE)
    url = f"{USERS}/{user_id}/{path}"

    added = await api.call("POST", url, body={})
    stored = await fields(redis, user_id)
    listed = await methods(api, user_id)
    twice = await api.call("POST", url, body={})
    removed = await api.call("DELETE", url)
    gone = await fields(redis, user_id)
    remove_again = await api.call("DELETE", url)

    assert added.status == 200, added.body
    assert stored[field] == "1"
    assert listed == ["PASSWORD", method]
    assert (twice.status, twice.error_id) == (409, already)
    assert removed.status == 200, removed.body
    assert field not in gone
    assert (remove_again.status, remove_again.error_id) == (404, missing)
    assert (await user_events(redis, user_id))[-2:] == [
        f"user.human.mfa.otp.{event}.added",
        f"user.human.mfa.otp.{event}.removed",
    ]


@pytest.mark.parametrize(
    ("path", "phone", "error_id"),
    [
        ("otp_sms", None, "COMMAND-Q54j2"),
        ("otp_sms", {"phone": "+41790000000", "returnCode": {}}, "COMMAND-Q54j2"),
        ("otp_email", None, "COMMAND-KLJ2d"),
    ],
)
async def test_an_otp_factor_needs_a_verified_address(api, redis, path, phone, error_id):
    user_id = await human(api, phone=phone, email_verified=False)
    before = await fields(redis, user_id)

    reply = await api.call("POST", f"{USERS}/{user_id}/{path}", body={})

    assert (reply.status, reply.error_id) == (400, error_id)
    assert reply.body["code"] == 9  # FAILED_PRECONDITION
    assert await fields(redis, user_id) == before


# -- recovery codes ------------------------------------------------------------------------


async def test_recovery_codes_are_shown_once_and_stored_only_as_keyed_hashes(api, redis):
    user_id = await human(api)

    reply = await api.call("POST", f"{USERS}/{user_id}/recovery_codes", body={"count": 5})

    assert reply.status == 200, reply.body
    codes = reply.body["recoveryCodes"]
    assert len(codes) == len(set(codes)) == 5
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    stored = await fields(redis, user_id)
    for code in codes:
        assert code not in json.dumps(stored)
    purpose = f"recovery-code:{user_id}"
    assert set(stored["rc"].split()) == {KEYRING.digest(purpose, code) for code in codes}
    assert await methods(api, user_id) == ["PASSWORD", "RECOVERY_CODE"]


async def test_generating_again_replaces_the_set(api, redis):
    user_id = await human(api)
    url = f"{USERS}/{user_id}/recovery_codes"
    await api.call("POST", url, body={"count": 10})

    reply = await api.call("POST", url, body={"count": 2})

    purpose = f"recovery-code:{user_id}"
    stored = (await fields(redis, user_id))["rc"].split()
    assert sorted(stored) == sorted(KEYRING.digest(purpose, c) for c in reply.body["recoveryCodes"])
    assert (await user_events(redis, user_id))[-3:] == [
        "user.human.mfa.recoverycode.added",
        "user.human.mfa.recoverycode.removed",
        "user.human.mfa.recoverycode.added",
    ]


@pytest.mark.parametrize("body", [{"count": 0}, {"count": 11}, {"count": -1}, {}])
async def test_a_count_outside_1_to_10_is_400_and_nothing_is_written(api, redis, body):
    user_id = await human(api)
    before = await fields(redis, user_id)

    reply = await api.call("POST", f"{USERS}/{user_id}/recovery_codes", body=body)

    assert (reply.status, reply.error_id) == (400, "COMMAND-7c0nx")
    assert await fields(redis, user_id) == before


async def test_remove_recovery_codes(api, redis):
    user_id = await human(api)
    url = f"{USERS}/{user_id}/recovery_codes"
    await api.call("POST", url, body={"count": 3})

    removed = await api.call("DELETE", url)
    again = await api.call("DELETE", url)

    assert removed.status == 200, removed.body
    assert "rc" not in await fields(redis, user_id)
    assert (again.status, again.error_id) == (400, "COMMAND-84rgg")
    assert await methods(api, user_id) == ["PASSWORD"]


# -- the list of ready methods -------------------------------------------------------------


async def test_every_ready_method_is_listed_with_list_details(api):
    user_id = await human(api, phone=VERIFIED_PHONE)
    await verify(api, user_id, await register(api, user_id))
    for path in ("otp_sms", "otp_email"):
        assert (await api.call("POST", f"{USERS}/{user_id}/{path}", body={})).status == 200
    await api.call("POST", f"{USERS}/{user_id}/recovery_codes", body={"count": 1})

    reply = await api.call("GET", f"{USERS}/{user_id}/authentication_methods")

    assert reply.status == 200, reply.body
    assert reply.body["authMethodTypes"] == [
        f"{M}PASSWORD",
        f"{M}TOTP",
        f"{M}OTP_SMS",
        f"{M}OTP_EMAIL",
        f"{M}RECOVERY_CODE",
    ]
    assert reply.body["details"]["totalResult"] == "5"
    assert reply.body["details"]["timestamp"].endswith("Z")


async def test_a_machine_user_has_no_methods_and_no_second_factors(api):
    machine_id, _ = await api.machine_with_pat([])

    listed = await api.call("GET", f"{USERS}/{machine_id}/authentication_methods")
    totp = await api.call("POST", f"{USERS}/{machine_id}/totp", body={})

    assert listed.status == 200
    assert "authMethodTypes" not in listed.body
    assert (listed.body["details"]["totalResult"]) == "0"
    assert (totp.status, totp.error_id) == (400, "COMMAND-h5u3s")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("POST", "totp", {}),
        ("POST", "totp/verify", {"code": "123456"}),
        ("DELETE", "totp", None),
        ("POST", "otp_sms", {}),
        ("DELETE", "otp_email", None),
        ("POST", "recovery_codes", {"count": 1}),
        ("DELETE", "recovery_codes", None),
        ("GET", "authentication_methods", None),
    ],
)
async def test_an_unknown_user_is_not_found(api, method, suffix, body):
    reply = await api.call(method, f"{USERS}/no-such-user/{suffix}", body=body)

    assert (reply.status, reply.error_id) == (404, "QUERY-Dfbg2")


# -- who may call --------------------------------------------------------------------------

EVERY_RPC = [
    ("POST", "totp", {}),
    ("POST", "totp/verify", {"code": "123456"}),
    ("DELETE", "totp", None),
    ("POST", "otp_sms", {}),
    ("DELETE", "otp_sms", None),
    ("POST", "otp_email", {}),
    ("DELETE", "otp_email", None),
    ("POST", "recovery_codes", {"count": 1}),
    ("DELETE", "recovery_codes", None),
    ("GET", "authentication_methods", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), EVERY_RPC)
async def test_another_user_may_not_touch_my_factors(api, redis, method, suffix, body):
    victim = await human(api)
    other = await session_token(api, await human(api))
    before = await fields(redis, victim)

    reply = await api.call(method, f"{USERS}/{victim}/{suffix}", other, body)

    assert (reply.status, reply.body["code"]) == (403, 7)
    assert await fields(redis, victim) == before


@pytest.mark.parametrize(("method", "suffix", "body"), EVERY_RPC)
async def test_a_machine_without_the_permission_is_refused(api, method, suffix, body):
    victim = await human(api)
    elsewhere = await api.org()
    _, pat = await api.machine_with_pat(["ORG_USER_MANAGER"], org_id=elsewhere)

    reply = await api.call(method, f"{USERS}/{victim}/{suffix}", pat, body)

    assert reply.status == 403


async def test_an_org_user_manager_may_manage_its_users_factors(api):
    org = await api.org()
    _, pat = await api.machine_with_pat(["ORG_USER_MANAGER"], org_id=org)
    victim = await human(api, organization={"orgId": org})

    secret = await register(api, victim, pat)
    await verify(api, victim, secret, pat)

    assert await methods(api, victim, pat) == ["PASSWORD", "TOTP"]


async def test_a_viewer_may_list_but_not_change(api):
    org = await api.org()
    _, pat = await api.machine_with_pat(["ORG_OWNER_VIEWER"], org_id=org)
    victim = await human(api, organization={"orgId": org})

    listed = await api.call("GET", f"{USERS}/{victim}/authentication_methods", pat)
    changed = await api.call("POST", f"{USERS}/{victim}/otp_email", pat, {})

    assert listed.status == 200
    assert changed.status == 403


async def test_a_user_registers_its_own_totp_with_its_session_token(api, redis):
    user_id = await human(api)
    token = await session_token(api, user_id)

    listed = await methods(api, user_id, token)
    secret = await register(api, user_id, token)
    await verify(api, user_id, secret, token)

    assert listed == ["PASSWORD"]
    assert (await fields(redis, user_id))["totp_ok"] == "1"
    # a ready second factor: the password-only session is no bearer any more (MFA)
    after = await api.call("GET", f"{USERS}/{user_id}/authentication_methods", token)
    assert after.status == 401


@pytest.mark.settings(cache_ttl_ms=60_000)
async def test_a_new_second_factor_ends_password_only_bearers_at_once_despite_the_cache(api):
    user_id = await human(api)
    token = await session_token(api, user_id)
    assert await methods(api, user_id, token) == ["PASSWORD"]  # the view is cached now

    reply = await api.call("POST", f"{USERS}/{user_id}/otp_email", token, {})

    assert reply.status == 200, reply.body
    after = await api.call("GET", f"{USERS}/{user_id}/authentication_methods", token)
    assert after.status == 401


@pytest.mark.parametrize(
    ("method", "suffix", "body", "ready"),
    [
        ("POST", "otp_sms", {}, "OTP_SMS"),
        ("POST", "otp_email", {}, "OTP_EMAIL"),
        ("POST", "recovery_codes", {"count": 2}, "RECOVERY_CODE"),
    ],
)
async def test_a_user_adds_its_own_first_second_factor(api, method, suffix, body, ready):
    user_id = await human(api, phone=VERIFIED_PHONE)
    token = await session_token(api, user_id)

    reply = await api.call(method, f"{USERS}/{user_id}/{suffix}", token, body)

    assert reply.status == 200, reply.body
    assert await methods(api, user_id) == ["PASSWORD", ready]


# -- Connect -------------------------------------------------------------------------------


async def test_the_totp_rpcs_over_connect(client, api, redis):
    user_id = await human(api)

    status, registered = await connect(client, "RegisterTOTP", {"userId": user_id})
    assert status == 200, registered
    code = pyotp.TOTP(registered["secret"]).now()
    status, verified = await connect(
        client, "VerifyTOTPRegistration", {"userId": user_id, "code": code}
    )
    assert status == 200, verified
    status, listed = await connect(client, "ListAuthenticationMethodTypes", {"userId": user_id})

    assert status == 200
    assert listed["authMethodTypes"] == [f"{M}PASSWORD", f"{M}TOTP"]
    assert (await fields(redis, user_id))["totp_ok"] == "1"


@pytest.mark.parametrize(
    ("method", "body", "code", "error_id"),
    [
        ("AddOTPSMS", {}, "failed_precondition", "COMMAND-Q54j2"),
        ("RemoveOTPEmail", {}, "not_found", "COMMAND-b312D"),
        ("GenerateRecoveryCodes", {"count": 11}, "invalid_argument", "COMMAND-7c0nx"),
        ("VerifyTOTPRegistration", {"code": "123456"}, "not_found", "COMMAND-3Mif9s"),
        ("RemoveRecoveryCodes", {}, "invalid_argument", "COMMAND-84rgg"),
    ],
)
async def test_connect_errors_carry_the_zitadel_ids(client, api, method, body, code, error_id):
    user_id = await human(api)

    status, reply = await connect(client, method, {"userId": user_id, **body})

    assert reply["code"] == code
    assert reply["details"][0]["debug"]["id"] == error_id
    assert status != 200


async def test_recovery_codes_over_connect(client, api):
    user_id = await human(api)

    status, reply = await connect(client, "GenerateRecoveryCodes", {"userId": user_id, "count": 3})

    assert status == 200, reply
    assert len(reply["recoveryCodes"]) == 3
    assert reply["details"]["resourceOwner"]


# -- secrets stay secret -------------------------------------------------------------------


async def test_seeds_and_codes_reach_neither_logs_nor_events(api, redis):
    user_id = await human(api)
    with structlog.testing.capture_logs() as logs:
        secret = await register(api, user_id)
        await verify(api, user_id, secret)
        reply = await api.call("POST", f"{USERS}/{user_id}/recovery_codes", body={"count": 4})
    codes = reply.body["recoveryCodes"]
    logged = json.dumps(logs, default=str)
    values = [
        value
        for stream in await redis.keys("sessiond:events:*")
        for _, entry in await redis.xrange(stream)
        for value in entry.values()
    ]
    streamed = b"".join(values).decode()
    stored = await fields(redis, user_id)
    for text in (logged, streamed):
        for forbidden in (secret, stored["totp"], *codes, *stored["rc"].split()):
            assert forbidden not in text
