"""Second-factor session checks and OTP challenges, end to end (spec §4.5-4.7, §5.2-5.4).

Real server, real Redis, real crypto: TOTP codes are computed with pyotp from the secret the
API handed out, OTP codes come from the responses (``returnCode``) or the outbox job, and the
lockout races run many concurrent requests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyotp
import pytest

from storage import keys
from tests.support import ADMIN_TOKEN, PASSWORD, RP_ID, Api, Reply, session_history

pytestmark = pytest.mark.asyncio


# -- helpers ----------------------------------------------------------------------------------
async def add_human(api: Api, **fields: Any) -> str:
    """A human with a verified e-mail (and whatever ``fields`` add), by AddHumanUser."""
    unique = time.monotonic_ns()
    body = {
        "username": f"h-{unique}",
        "profile": {"givenName": "H", "familyName": "Uman"},
        "email": {"email": f"h{unique}@example.com", "isVerified": True},
        **fields,
    }
    reply = await api.call("POST", "/v2/users/human", body=body)
    assert reply.status == 201, reply.body
    return str(reply.body["userId"])


async def phone_user(api: Api) -> str:
    """A human with a verified e-mail and a verified phone."""
    return await add_human(
        api,
        phone={"phone": "+41791234567", "isVerified": True},
        password={"password": PASSWORD},
    )


async def steady_step(margin_s: float = 8.0) -> None:
    """Wait for a fresh 30-s step if this one ends within ``margin_s``: a test's codes
    (this step's, the next one's) must stay within the ±1 step the server accepts."""
    left = 30 - time.time() % 30
    if left < margin_s:
        await asyncio.sleep(left + 0.05)


async def register_totp(api: Api, user_id: str, token: str = ADMIN_TOKEN) -> pyotp.TOTP:
    """RegisterTOTP + VerifyTOTPRegistration with the current code; returns the generator."""
    await steady_step()
    reply = await api.call("POST", f"/v2/users/{user_id}/totp", token, body={})
    assert reply.status == 200, reply.body
    totp = pyotp.TOTP(reply.body["secret"])
    verified = await api.call(
        "POST", f"/v2/users/{user_id}/totp/verify", token, body={"code": totp.now()}
    )
    assert verified.status == 200, verified.body
    return totp


def next_code(totp: pyotp.TOTP, steps: int = 1) -> str:
    """A code of a later time step (within the ±1 skew): the current one was used up."""
    return totp.at(time.time() + 30 * steps)


def send_with(template: str) -> dict[str, Any]:
    return {"challenges": {"otpEmail": {"sendCode": {"urlTemplate": template}}}}


async def user_session(api: Api, user_id: str) -> Reply:
    return await api.create({"checks": {"user": {"userId": user_id}}})


async def factors(api: Api, session_id: str) -> dict[str, Any]:
    reply = await api.get(session_id)
    assert reply.status == 200, reply.body
    return dict(reply.body["session"]["factors"])


async def sequence(api: Api, session_id: str) -> str:
    return str((await api.get(session_id)).body["session"]["sequence"])


# -- TOTP ---------------------------------------------------------------------------------
async def test_a_registered_totp_checks_on_a_session_with_verified_at(api: Api):
    user = await api.human()
    totp = await register_totp(api, user)
    created = await user_session(api, user)
    sid = created.body["sessionId"]
    reply = await api.set(sid, {"checks": {"totp": {"code": next_code(totp)}}})
    assert reply.status == 200, reply.body
    assert reply.body["sessionToken"]
    got = await factors(api, sid)
    assert set(got) == {"user", "totp"}
    assert got["totp"]["verifiedAt"]


async def test_16_18_an_imported_totp_secret_is_ready_at_once(api: Api):
    secret = pyotp.random_base32()
    user = await add_human(api, totpSecret=secret)
    await steady_step()
    created = await user_session(api, user)
    checked = await api.set(
        created.body["sessionId"], {"checks": {"totp": {"code": pyotp.TOTP(secret).now()}}}
    )
    assert checked.status == 200, checked.body
    assert "totp" in await factors(api, created.body["sessionId"])


async def test_a_used_totp_code_is_a_replay_on_any_session_of_the_user(api: Api):
    user = await api.human()
    totp = await register_totp(api, user)
    code = next_code(totp)
    first = await user_session(api, user)
    assert (
        await api.set(first.body["sessionId"], {"checks": {"totp": {"code": code}}})
    ).status == 200
    second = await user_session(api, user)
    replay = await api.set(second.body["sessionId"], {"checks": {"totp": {"code": code}}})
    assert (replay.status, replay.error_id) == (400, "TOTP-Auw0a")
    assert "totp" not in await factors(api, second.body["sessionId"])


@pytest.mark.parametrize(
    ("setup", "code", "status", "error_id"),
    [
        ("verified", "000000", 400, "EVENT-8isk2"),
        ("unverified", "000000", 400, "COMMAND-3Mif9s"),
        ("none", "000000", 400, "COMMAND-3Mif9s"),
    ],
)
async def test_totp_check_failures(api: Api, setup: str, code: str, status: int, error_id: str):
    user = await api.human()
    if setup == "verified":
        totp = await register_totp(api, user)
        code = "000000" if totp.now() != "000000" else "111111"
    elif setup == "unverified":
        assert (await api.call("POST", f"/v2/users/{user}/totp", body={})).status == 200
    created = await user_session(api, user)
    sid = created.body["sessionId"]
    before = await sequence(api, sid)
    reply = await api.set(sid, {"checks": {"totp": {"code": code}}})
    assert (reply.status, reply.error_id) == (status, error_id)
    assert await sequence(api, sid) == before  # a failed check leaves the session untouched


async def test_a_totp_check_without_a_user_is_refused(api: Api):
    reply = await api.create({"checks": {"totp": {"code": "123456"}}})
    assert (reply.status, reply.error_id) == (400, "COMMAND-8N9ds")


# -- OTP SMS / e-mail -----------------------------------------------------------------------
async def test_16_21_otp_sms_with_return_code_then_its_check(api: Api):
    user = await phone_user(api)
    assert (await api.call("POST", f"/v2/users/{user}/otp_sms", body={})).status == 200
    created = await api.create(
        {"checks": {"user": {"userId": user}}, "challenges": {"otpSms": {"returnCode": True}}}
    )
    assert created.status == 201, created.body
    code = created.body["challenges"]["otpSms"]
    assert len(code) == 8
    assert code.isdigit()
    sid = created.body["sessionId"]
    assert "challenges" not in (await api.get(sid)).body["session"]  # only in that response
    checked = await api.set(sid, {"checks": {"otpSms": {"code": code}}})
    assert checked.status == 200, checked.body
    assert set(await factors(api, sid)) == {"user", "otpSms"}
    again = await api.set(sid, {"checks": {"otpSms": {"code": code}}})
    assert (again.status, again.error_id) == (400, "COMMAND-S34gh")  # used once


async def test_16_22_otp_email_with_return_code_then_its_check(api: Api):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    created = await user_session(api, user)
    sid = created.body["sessionId"]
    challenged = await api.set(sid, {"challenges": {"otpEmail": {"returnCode": {}}}})
    assert challenged.status == 200, challenged.body
    code = challenged.body["challenges"]["otpEmail"]
    wrong = await api.set(
        sid, {"checks": {"otpEmail": {"code": "0" * 8 if code != "0" * 8 else "1" * 8}}}
    )
    assert (wrong.status, wrong.error_id) == (400, "CODE-woT0xc")
    assert (await api.set(sid, {"checks": {"otpEmail": {"code": code}}})).status == 200
    assert "otpEmail" in await factors(api, sid)


async def test_a_new_challenge_replaces_the_old_code(api: Api):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    ask: dict[str, Any] = {"challenges": {"otpEmail": {"returnCode": {}}}}
    old = (await api.set(sid, ask)).body["challenges"]["otpEmail"]
    new = (await api.set(sid, ask)).body["challenges"]["otpEmail"]
    if old != new:
        stale = await api.set(sid, {"checks": {"otpEmail": {"code": old}}})
        assert (stale.status, stale.error_id) == (400, "CODE-woT0xc")
    assert (await api.set(sid, {"checks": {"otpEmail": {"code": new}}})).status == 200


@pytest.mark.parametrize(
    ("body", "error_id"),
    [
        ({"challenges": {"otpSms": {"returnCode": True}}}, "COMMAND-BJ2g3"),
        ({"challenges": {"otpEmail": {"returnCode": {}}}}, "COMMAND-JKLJ3"),
        ({"checks": {"otpSms": {"code": "12345678"}}}, "COMMAND-d2r52"),
        ({"checks": {"otpEmail": {"code": "12345678"}}}, "COMMAND-d2r52"),
        ({"checks": {"recoveryCode": {"code": "AAAAA-BBBBB"}}}, "COMMAND-84rgg"),
    ],
)
async def test_factors_not_added_are_not_ready(api: Api, body: dict[str, Any], error_id: str):
    user = await api.human()
    sid = (await user_session(api, user)).body["sessionId"]
    reply = await api.set(sid, body)
    assert (reply.status, reply.error_id) == (400, error_id)


async def test_an_otp_check_with_no_challenge_is_code_not_found(api: Api):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    reply = await api.set(sid, {"checks": {"otpEmail": {"code": "12345678"}}})
    assert (reply.status, reply.error_id) == (400, "COMMAND-S34gh")


@pytest.mark.parametrize(
    ("body", "error_id"),
    [
        ({"challenges": {"otpSms": {"returnCode": True}}}, "COMMAND-JKL3g"),
        ({"challenges": {"otpEmail": {}}}, "COMMAND-JK3gp"),
        ({"checks": {"otpSms": {"code": "1"}}}, "COMMAND-S453v"),
        ({"checks": {"recoveryCode": {"code": "x"}}}, "COMMAND-4m9s2"),
    ],
)
async def test_challenges_and_checks_without_a_user(api: Api, body: dict[str, Any], error_id: str):
    reply = await api.create(body)
    assert (reply.status, reply.error_id) == (400, error_id)


async def test_outside_dev_mode_a_send_with_no_channel_is_a_failed_precondition(
    api: Api, redis: Any
):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    reply = await api.set(sid, {"challenges": {"otpEmail": {"sendCode": {}}}})
    assert (reply.status, reply.body["code"], reply.error_id) == (400, 9, "NOTIF-noChannel")
    assert await redis.xlen(keys.OUTBOX) == 0


@pytest.mark.settings(smtp_host="127.0.0.1")
async def test_a_sent_email_code_is_an_outbox_job_committed_with_the_challenge(
    api: Api, redis: Any
):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    template = "https://login.example.com/otp?code={{.Code}}&session={{.SessionID}}"
    reply = await api.set(
        sid, {"challenges": {"otpEmail": {"sendCode": {"urlTemplate": template}}}}
    )
    assert reply.status == 200, reply.body
    assert "challenges" not in reply.body  # sent, not returned
    entries = await redis.xrange(keys.OUTBOX)
    assert len(entries) == 1
    fields = {k.decode(): v.decode() for k, v in entries[0][1].items()}
    assert (fields["session_id"], fields["template"], fields["channel"]) == (
        sid,
        "otp_email",
        "email",
    )
    assert "@example.com" not in " ".join(fields.values())  # the recipient is sealed
    assert "login.example.com" not in " ".join(fields.values())  # so is the link


@pytest.mark.settings(smtp_host="127.0.0.1")
@pytest.mark.parametrize(
    "template", ["{{.Nope}}", "https://x/{{.Code", "{{ if .Code }}x{{ end }}", "{{}}"]
)
async def test_a_bad_url_template_is_refused_at_once(api: Api, redis: Any, template: str):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    before = await sequence(api, sid)
    reply = await api.set(
        sid, {"challenges": {"otpEmail": {"sendCode": {"urlTemplate": template}}}}
    )
    assert (reply.status, reply.error_id) == (400, "DOMAIN-oGh5e")
    assert await sequence(api, sid) == before
    assert await redis.xlen(keys.OUTBOX) == 0


# -- recovery codes ---------------------------------------------------------------------------
async def test_16_23_a_recovery_code_checks_once(api: Api):
    user = await api.human()
    generated = await api.call("POST", f"/v2/users/{user}/recovery_codes", body={"count": 5})
    assert generated.status == 200, generated.body
    codes = generated.body["recoveryCodes"]
    sid = (await user_session(api, user)).body["sessionId"]
    assert (await api.set(sid, {"checks": {"recoveryCode": {"code": codes[2]}}})).status == 200
    assert "recoveryCode" in await factors(api, sid)
    other = (await user_session(api, user)).body["sessionId"]
    reused = await api.set(other, {"checks": {"recoveryCode": {"code": codes[2]}}})
    assert (reused.status, reused.error_id) == (400, "DOMAIN-6uvh0")
    assert (await api.set(other, {"checks": {"recoveryCode": {"code": codes[3]}}})).status == 200


# -- bad input: 400 with ZITADEL's body, nothing written --------------------------------------
@pytest.mark.parametrize(
    "checks",
    [
        {"totp": {"code": "12345"}},
        {"totp": {"code": "1234567"}},
        {"totp": {}},
        {"otpSms": {"code": ""}},
        {"otpEmail": {"code": ""}},
        {"recoveryCode": {"code": "x" * 201}},
        {"recoveryCode": {"code": 12}},
        {"otpSms": {"code": ["1"]}},
    ],
)
async def test_malformed_checks_are_400_and_write_nothing(api: Api, checks: dict[str, Any]):
    user = await api.human()
    sid = (await user_session(api, user)).body["sessionId"]
    before = await sequence(api, sid)
    reply = await api.set(sid, {"checks": checks})
    assert (reply.status, reply.body["code"]) == (400, 3), reply.body
    assert await sequence(api, sid) == before


async def test_a_webauthn_challenge_needs_a_registered_key(api: Api):
    """ZITADEL's library refuses to begin a login without credentials (WEBAU-4G8sw)."""
    user = await api.human()
    sid = (await user_session(api, user)).body["sessionId"]
    reply = await api.set(
        sid, {"challenges": {"webAuthN": {"domain": RP_ID, "userVerificationRequirement": 1}}}
    )
    assert (reply.status, reply.error_id) == (400, "WEBAU-4G8sw")


# -- lockout and races ----------------------------------------------------------------------
@pytest.mark.settings(lockout_max_otp_attempts=3, rate_limit_user="0", rate_limit_ip="0")
async def test_30_concurrent_wrong_totp_codes_never_exceed_the_lockout(api: Api, redis: Any):
    user = await api.human()
    totp = await register_totp(api, user)
    sids = [(await user_session(api, user)).body["sessionId"] for _ in range(30)]
    wrong = "000000" if totp.now() != "000000" else "111111"
    replies = await asyncio.gather(
        *(api.set(sid, {"checks": {"totp": {"code": wrong}}}) for sid in sids)
    )
    ids = [reply.error_id for reply in replies]
    assert ids.count("EVENT-8isk2") == 3, ids  # exactly max wrong codes were verified
    assert set(ids) <= {"EVENT-8isk2", "COMMAND-SF3fg", "COMMAND-otpBusy"}, ids
    assert int(await redis.hget(keys.user(user), "failed_otp") or 0) == 3
    state = (await api.call("GET", f"/v2/users/{user}")).body["user"]["state"]
    assert state == "USER_STATE_LOCKED"
    right = await api.set(sids[0], {"checks": {"totp": {"code": next_code(totp)}}})
    assert (right.status, right.error_id) == (400, "COMMAND-SF3fg")


@pytest.mark.settings(lockout_max_otp_attempts=2)
async def test_wrong_recovery_codes_lock_and_a_locked_user_is_not_found(api: Api):
    user = await api.human()
    codes = (await api.call("POST", f"/v2/users/{user}/recovery_codes", body={"count": 2})).body[
        "recoveryCodes"
    ]
    sid = (await user_session(api, user)).body["sessionId"]
    for _ in range(2):
        wrong = await api.set(sid, {"checks": {"recoveryCode": {"code": "WRONG-CODE0"}}})
        assert wrong.error_id == "DOMAIN-6uvh0"
    locked = await api.set(sid, {"checks": {"recoveryCode": {"code": codes[0]}}})
    assert (locked.status, locked.error_id) == (404, "COMMAND-2w6oa")


async def test_one_otp_code_used_by_concurrent_checks_succeeds_once(api: Api):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    code = (await api.set(sid, {"challenges": {"otpEmail": {"returnCode": {}}}})).body[
        "challenges"
    ]["otpEmail"]
    replies = await asyncio.gather(
        *(api.set(sid, {"checks": {"otpEmail": {"code": code}}}) for _ in range(10))
    )
    statuses = sorted(reply.status for reply in replies)
    assert statuses.count(200) == 1, [(r.status, r.error_id) for r in replies]
    assert {r.error_id for r in replies if r.status != 200} == {"COMMAND-S34gh"}


async def test_one_recovery_code_used_on_concurrent_sessions_succeeds_once(api: Api):
    user = await api.human()
    code = (await api.call("POST", f"/v2/users/{user}/recovery_codes", body={"count": 1})).body[
        "recoveryCodes"
    ][0]
    sids = [(await user_session(api, user)).body["sessionId"] for _ in range(10)]
    replies = await asyncio.gather(
        *(api.set(sid, {"checks": {"recoveryCode": {"code": code}}}) for sid in sids)
    )
    assert sorted(r.status for r in replies).count(200) == 1
    assert {r.error_id for r in replies if r.status != 200} <= {"DOMAIN-6uvh0", "COMMAND-84rgg"}


# -- bearer rule (spec §7, checklist 31) and self-service (checklist 17) ------------------
async def test_16_31_a_password_only_token_stops_being_a_bearer_once_totp_is_verified(api: Api):
    user = await api.human()
    first = await api.session_for(user)
    token = first.body["sessionToken"]
    registered = await api.call("POST", f"/v2/users/{user}/totp", token, body={})
    assert registered.status == 200, registered.body  # self-service with the session token
    assert (await api.get(first.body["sessionId"], token)).status == 200  # still a bearer
    totp = pyotp.TOTP(registered.body["secret"])
    verify = await api.call(
        "POST", f"/v2/users/{user}/totp/verify", token, body={"code": totp.now()}
    )
    assert verify.status == 200, verify.body
    second = await api.session_for(user)
    rejected = await api.get(second.body["sessionId"], second.body["sessionToken"])
    assert rejected.status == 401
    mfa = await api.set(second.body["sessionId"], {"checks": {"totp": {"code": next_code(totp)}}})
    assert mfa.status == 200, mfa.body
    accepted = await api.get(second.body["sessionId"], mfa.body["sessionToken"])
    assert accepted.status == 200, accepted.body


async def test_16_17_self_service_registration_then_totp_check(api: Api):
    """The user enrols with its own session tokens: TOTP first (a password session may,
    while no second factor is ready), then OTP SMS / e-mail with an MFA session."""
    user = await phone_user(api)
    password_only = (await api.session_for(user)).body["sessionToken"]
    totp = await register_totp(api, user, password_only)
    refused = await api.call("POST", f"/v2/users/{user}/otp_sms", password_only, body={})
    assert refused.status == 401  # MFA is required of a bearer now
    mfa = await api.session_for(user)
    checked = await api.set(mfa.body["sessionId"], {"checks": {"totp": {"code": next_code(totp)}}})
    assert checked.status == 200, checked.body
    for path in ("otp_sms", "otp_email"):
        added = await api.call(
            "POST", f"/v2/users/{user}/{path}", checked.body["sessionToken"], body={}
        )
        assert added.status == 200, (path, added.body)
    sid = (await user_session(api, user)).body["sessionId"]
    again = await api.set(sid, {"checks": {"totp": {"code": next_code(totp, 0)}}})
    assert (again.status, again.error_id) == (400, "TOTP-Auw0a")  # that step is used up
    assert set(await factors(api, sid)) == {"user"}


async def test_another_users_session_token_may_not_register_factors(api: Api):
    victim = await api.human()
    attacker = await api.human()
    token = (await api.session_for(attacker)).body["sessionToken"]
    reply = await api.call("POST", f"/v2/users/{victim}/totp", token, body={})
    assert reply.status == 403


# -- events and secrets -------------------------------------------------------------------------
async def test_events_name_the_checks_and_carry_no_codes(api: Api, redis: Any):
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    code = (await api.set(sid, {"challenges": {"otpEmail": {"returnCode": {}}}})).body[
        "challenges"
    ]["otpEmail"]
    assert (await api.set(sid, {"checks": {"otpEmail": {"code": code}}})).status == 200
    entries = await session_history(redis, sid)
    types = [fields[b"type"].decode() for fields in entries]
    assert "session.otp.email.challenged" in types
    assert "session.otp.email.checked" in types
    everything = b" ".join(v for fields in entries for v in fields.values())
    for stream in [k async for k in redis.scan_iter("sessiond:events:*")]:
        everything += b" ".join(v for _, f in await redis.xrange(stream) for v in f.values())
    assert code.encode() not in everything
    state = await redis.hgetall(keys.session(sid))
    assert code.encode() not in b" ".join(state.values())


# -- a failed request uses no code up, a replay is no guess (review findings) --------------------
async def test_a_right_code_in_a_request_that_fails_later_is_not_used_up(api: Api):
    user = await api.human()
    codes = (await api.call("POST", f"/v2/users/{user}/recovery_codes", body={"count": 1})).body[
        "recoveryCodes"
    ]
    sid = (await user_session(api, user)).body["sessionId"]
    code = {"recoveryCode": {"code": codes[0]}}
    # a challenge the user is not ready for, then a lifetime past year 9999: both refused
    refused = await api.set(sid, {"checks": code, "challenges": {"otpSms": {"returnCode": True}}})
    assert (refused.status, refused.error_id) == (400, "COMMAND-BJ2g3")
    refused = await api.set(sid, {"checks": code, "lifetime": "315360000000s"})
    assert (refused.status, refused.error_id) == (400, "SESSION-lifetimeMax")
    accepted = await api.set(sid, {"checks": code})
    assert accepted.status == 200, accepted.body


async def test_a_right_totp_code_survives_a_wrong_recovery_code_in_the_same_request(api: Api):
    user = await api.human()
    totp = await register_totp(api, user)
    assert (
        await api.call("POST", f"/v2/users/{user}/recovery_codes", body={"count": 1})
    ).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    code = next_code(totp)
    both = {"totp": {"code": code}, "recoveryCode": {"code": "WRONG-CODE0"}}
    refused = await api.set(sid, {"checks": both})
    assert (refused.status, refused.error_id) == (400, "DOMAIN-6uvh0")
    assert (await api.set(sid, {"checks": {"totp": {"code": code}}})).status == 200


@pytest.mark.settings(lockout_max_otp_attempts=3)
async def test_replays_of_a_used_code_do_not_lock_the_user(api: Api):
    user = await api.human()
    totp = await register_totp(api, user)
    code = next_code(totp)
    sid = (await user_session(api, user)).body["sessionId"]
    assert (await api.set(sid, {"checks": {"totp": {"code": code}}})).status == 200
    for _ in range(4):
        replay = await api.set(sid, {"checks": {"totp": {"code": code}}})
        assert (replay.status, replay.error_id) == (400, "TOTP-Auw0a")
    state = (await api.call("GET", f"/v2/users/{user}")).body["user"]["state"]
    assert state == "USER_STATE_ACTIVE"


async def test_one_totp_code_sent_to_ten_sessions_at_once_is_accepted_once(api: Api):
    user = await api.human()
    totp = await register_totp(api, user)
    code = next_code(totp)
    sids = [(await user_session(api, user)).body["sessionId"] for _ in range(10)]
    replies = await asyncio.gather(
        *(api.set(sid, {"checks": {"totp": {"code": code}}}) for sid in sids)
    )
    assert [r.status for r in replies].count(200) == 1, [(r.status, r.error_id) for r in replies]
    assert {r.error_id for r in replies if r.status != 200} == {"TOTP-Auw0a"}


@pytest.mark.parametrize(
    ("code", "error_id"),
    [("right", "COMMAND-S6h4R"), ("wrong", "CODE-woT0xc"), ("none", "COMMAND-S34gh")],
)
async def test_a_locked_users_otp_check_reports_the_code_before_the_lock(
    api: Api, code: str, error_id: str
):
    """Spec §4.6: no challenge, expired and wrong codes (steps 4-5) before locked (step 6)."""
    user = await api.human()
    assert (await api.call("POST", f"/v2/users/{user}/otp_email", body={})).status == 200
    sid = (await user_session(api, user)).body["sessionId"]
    given = "12345678"
    if code != "none":
        returned = await api.set(sid, {"challenges": {"otpEmail": {"returnCode": {}}}})
        right = returned.body["challenges"]["otpEmail"]
        given = right if code == "right" else ("0" * 8 if right != "0" * 8 else "1" * 8)
    assert (await api.call("POST", f"/v2/users/{user}/lock", body={})).status == 200
    reply = await api.set(sid, {"checks": {"otpEmail": {"code": given}}})
    assert (reply.status, reply.error_id) == (400, error_id)
