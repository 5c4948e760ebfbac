"""WebAuthn on sessions, pure: check order, challenges, one use, the factor, views, payloads.

What tests/test_webauthn_session.py shows end to end against Redis, stated against
``actors.machine`` and its neighbours alone, so the mutation run (pure tests only) sees each
rule. The key records themselves are in tests/test_rules_webauthn.py.
"""

from __future__ import annotations

import msgspec
import pytest
from msgspec.structs import replace

from actors import machine
from actors.commands import (
    Challenges,
    Checks,
    CreateSession,
    Evidence,
    IssuedCode,
    OtpChallenge,
    SetSession,
    WebAuthnChallenge,
)
from actors.errors import FailedPrecondition, Internal, InvalidArgument
from actors.events import (
    OtpEmailChallenged,
    OtpSmsChallenged,
    PasswordChecked,
    TokenSet,
    TotpChecked,
    WebAuthNChallenged,
    WebAuthNChecked,
    event_type,
    stream_payload,
)
from actors.model import CheckedFactor, Factors, PendingCode, PendingWebAuthn, WebAuthnFactor
from actors.views import render
from tests.test_rules_session import ALICE, NOW, USER_CHECK, ctx, session
from tests.test_rules_users import expect

ASSERTION = b'{"id":"cred-a"}'
PENDING = PendingWebAuthn(
    challenge="Y2hhbGxlbmdl",
    rp_id="example.com",
    user_verification=1,
    allowed_credentials=("cred-a", "cred-b"),
    expires_ms=NOW + 60_000,
)
ASK = Challenges(web_authn=WebAuthnChallenge(domain="example.com", user_verification=1))
CODE = IssuedCode(plain="12345678", code_hash="kid.hash", expires_ms=NOW + 300_000)
VERIFIED = frozenset({"web_authn"})


def checks(**fields: object) -> Checks:
    return replace(Checks(), **fields)


# -- which user, and the ids when there is none ------------------------------------------------
@pytest.mark.parametrize(
    ("check", "error_id"),
    [
        (checks(web_authn=ASSERTION), "COMMAND-Sfw3r"),
        (checks(password="pw", web_authn=ASSERTION), "COMMAND-Sfw3f"),
        (checks(web_authn=ASSERTION, totp="123456"), "COMMAND-Sfw3r"),
        (checks(web_authn=ASSERTION, recovery_code="x"), "COMMAND-Sfw3r"),
    ],
)
def test_a_webauthn_check_without_a_user_comes_after_the_password(check, error_id) -> None:
    assert machine.CREDENTIAL_CHECKS[:4] == ("password", "idp_intent", "web_authn", "totp")
    with expect(FailedPrecondition, error_id, "Errors.User.UserIDMissing"):
        machine.preflight(None, CreateSession(checks=check), Evidence(), ctx())


@pytest.mark.parametrize(
    "challenges",
    [ASK, replace(ASK, otp_sms=OtpChallenge()), replace(ASK, otp_email=OtpChallenge())],
)
def test_a_webauthn_challenge_without_a_user_comes_before_the_otp_ones(challenges) -> None:
    with expect(FailedPrecondition, "COMMAND-eeR2e", "Errors.User.UserIDMissing"):
        machine.preflight(None, CreateSession(challenges=challenges), Evidence(), ctx())


def test_a_webauthn_check_without_a_user_comes_before_the_challenge() -> None:
    command = CreateSession(checks=checks(web_authn=ASSERTION), challenges=ASK)
    with expect(FailedPrecondition, "COMMAND-Sfw3r", "Errors.User.UserIDMissing"):
        machine.preflight(None, command, Evidence(), ctx())


def test_the_webauthn_target_is_the_stored_user_or_the_one_checked_now() -> None:
    check = SetSession(checks=checks(web_authn=ASSERTION))
    assert machine.preflight(session(), check, Evidence(), ctx()) == "alice"
    assert machine.preflight(session(), SetSession(challenges=ASK), Evidence(), ctx()) == "alice"
    new = CreateSession(checks=replace(USER_CHECK, web_authn=ASSERTION))
    assert machine.preflight(None, new, Evidence(user=ALICE), ctx()) == "alice"


# -- the check's event ---------------------------------------------------------------------------
@pytest.mark.parametrize("user_verified", [False, True])
def test_a_verified_assertion_is_its_event_then_a_new_token(user_verified: bool) -> None:
    command = SetSession(checks=checks(web_authn=ASSERTION))
    evidence = Evidence(verified=VERIFIED, web_authn_user_verified=user_verified)
    events = machine.decide(session(), command, evidence, ctx())
    assert events == [
        WebAuthNChecked(checked_at_ms=NOW, user_verified=user_verified),
        TokenSet(token_id="tid1", token_hash=ctx().token.token_hash),
    ]


def test_an_assertion_the_actor_did_not_verify_is_an_internal_error() -> None:
    command = SetSession(checks=checks(web_authn=ASSERTION))
    others = Evidence(verified=frozenset({"totp", "otp_sms"}), web_authn_user_verified=True)
    with expect(Internal, "SESSION-notVerified", "Errors.Internal"):
        machine.decide(session(), command, others, ctx())


def test_the_webauthn_check_sits_between_password_and_totp_in_the_events() -> None:
    command = SetSession(checks=checks(password="pw", web_authn=ASSERTION, totp="1"))
    evidence = Evidence(password_verified=True, verified=frozenset({"web_authn", "totp"}))
    events = machine.decide(session(), command, evidence, ctx())
    assert events[:3] == [
        PasswordChecked(checked_at_ms=NOW),
        WebAuthNChecked(checked_at_ms=NOW, user_verified=False),
        TotpChecked(checked_at_ms=NOW),
    ]
    assert [event_type(e) for e in events] == [
        "session.password.checked",
        "session.webAuthN.checked",
        "session.totp.checked",
        "session.token.set",
    ]


# -- the challenge -------------------------------------------------------------------------------
def test_a_challenge_stores_what_the_actor_drew_and_comes_before_the_otp_ones() -> None:
    command = SetSession(challenges=replace(ASK, otp_sms=OtpChallenge(), otp_email=OtpChallenge()))
    evidence = Evidence(web_authn_challenge=PENDING, otp_sms_code=CODE, otp_email_code=CODE)
    events = machine.decide(session(), command, evidence, ctx())
    assert events[0] == WebAuthNChallenged(
        pending=PendingWebAuthn(
            challenge="Y2hhbGxlbmdl",
            rp_id="example.com",
            user_verification=1,
            allowed_credentials=("cred-a", "cred-b"),
            expires_ms=NOW + 60_000,
        )
    )
    assert [event_type(e) for e in events] == [
        "session.webAuthN.challenged",
        "session.otp.sms.challenged",
        "session.otp.email.challenged",
        "session.token.set",
    ]
    assert isinstance(events[1], OtpSmsChallenged)
    assert isinstance(events[2], OtpEmailChallenged)


def test_a_challenge_the_actor_did_not_draw_is_an_internal_error() -> None:
    with expect(Internal, "SESSION-noChallenge", "Errors.Internal"):
        machine.decide(session(), SetSession(challenges=ASK), Evidence(), ctx())


def test_a_challenge_replaces_the_pending_one_and_leaves_the_otp_ones() -> None:
    otp = PendingCode(code_hash="h", expires_ms=NOW + 1)
    old = replace(PENDING, challenge="old", expires_ms=NOW)
    before = session(web_authn_challenge=old, otp_sms_challenge=otp, otp_email_challenge=otp)
    events = machine.decide(
        before, SetSession(challenges=ASK), Evidence(web_authn_challenge=PENDING), ctx()
    )
    after = machine.evolve_all(before, events, session_id="s1", at_ms=NOW)
    assert after is not None
    assert after.web_authn_challenge == PENDING
    assert (after.otp_sms_challenge, after.otp_email_challenge) == (otp, otp)
    assert after.factors == before.factors


def test_the_challenge_an_assertion_answers_lives_up_to_its_expiry_millisecond() -> None:
    live = replace(PENDING, expires_ms=NOW)
    assert machine.check_web_authn_challenge(live, NOW) is live
    for pending, now_ms in ((live, NOW + 1), (None, NOW)):
        error = machine.check_web_authn_challenge(pending, now_ms)
        assert isinstance(error, FailedPrecondition)
        assert type(error) is FailedPrecondition
        assert (error.error_id, error.key) == (
            "COMMAND-Ioqu5",
            "Errors.Session.WebAuthN.NoChallenge",
        )


# -- the factor ---------------------------------------------------------------------------------
@pytest.mark.parametrize("user_verified", [False, True])
def test_a_checked_assertion_is_the_factor_and_uses_the_challenge_up(user_verified) -> None:
    otp = PendingCode(code_hash="h", expires_ms=NOW + 1)
    before = session(web_authn_challenge=PENDING, otp_sms_challenge=otp)
    event = WebAuthNChecked(checked_at_ms=NOW - 7, user_verified=user_verified)
    after = machine.evolve(before, event, session_id="s1", at_ms=NOW)
    assert after.factors == replace(
        before.factors,
        web_authn=WebAuthnFactor(verified_at_ms=NOW - 7, user_verified=user_verified),
    )
    assert after.web_authn_challenge is None
    assert after.otp_sms_challenge == otp
    assert (after.sequence, after.change_ms) == (before.sequence + 1, NOW)


def test_other_checks_leave_the_webauthn_challenge_alone() -> None:
    before = session(web_authn_challenge=PENDING)
    for event in (PasswordChecked(checked_at_ms=NOW), TotpChecked(checked_at_ms=NOW)):
        assert machine.evolve(before, event, session_id="s1", at_ms=NOW).web_authn_challenge == (
            PENDING
        )


def test_a_webauthn_factor_counts_as_a_second_factor_and_with_uv_as_a_passkey() -> None:
    u2f = Factors(web_authn=WebAuthnFactor(verified_at_ms=NOW - 2))
    assert (u2f.second_factor_ms, u2f.passkey_ms) == (NOW - 2, None)
    passkey = Factors(web_authn=WebAuthnFactor(verified_at_ms=NOW - 2, user_verified=True))
    assert (passkey.second_factor_ms, passkey.passkey_ms) == (NOW - 2, NOW - 2)
    later_totp = replace(passkey, totp=CheckedFactor(verified_at_ms=NOW))
    assert later_totp.second_factor_ms == NOW
    earlier_totp = replace(passkey, totp=CheckedFactor(verified_at_ms=NOW - 9))
    assert earlier_totp.second_factor_ms == NOW - 2
    assert Factors().passkey_ms is None
    assert Factors(totp=CheckedFactor(verified_at_ms=NOW)).passkey_ms is None


# -- what reads and streams show --------------------------------------------------------------
@pytest.mark.parametrize(
    ("user_verified", "wire"),
    [
        (False, {"verifiedAt": "2023-11-14T22:13:19.995Z"}),
        (True, {"verifiedAt": "2023-11-14T22:13:19.995Z", "userVerified": True}),
    ],
)
def test_the_webauthn_factor_renders_as_zitadels_webauthn(user_verified, wire) -> None:
    factor = WebAuthnFactor(verified_at_ms=NOW - 5, user_verified=user_verified)
    view = render(session(factors=replace(session().factors, web_authn=factor)))
    assert view.factors is not None
    assert view.factors.web_auth_n is not None
    assert view.factors.web_auth_n.verified_at == "2023-11-14T22:13:19.995Z"
    assert view.factors.web_auth_n.user_verified is user_verified
    assert msgspec.to_builtins(view)["factors"]["webAuthN"] == wire
    assert b'"webAuthN":' + msgspec.json.encode(wire) in msgspec.json.encode(view)


def test_no_webauthn_factor_renders_none() -> None:
    view = render(session())
    assert view.factors is not None
    assert view.factors.web_auth_n is None
    assert "webAuthN" not in msgspec.to_builtins(view)["factors"]


def test_the_challenged_payload_has_zitadels_names_the_typo_included() -> None:
    event = WebAuthNChallenged(
        pending=PendingWebAuthn(
            challenge="Y2g",
            rp_id="example.com",
            user_verification=2,
            allowed_credentials=("c1", "c2"),
            expires_ms=NOW + 60_000,
        )
    )
    assert event_type(event) == "session.webAuthN.challenged"
    assert stream_payload(event, NOW) == {
        "challenge": "Y2g",
        "allowedCrentialIDs": ["c1", "c2"],
        "userVerification": 2,
        "rpid": "example.com",
    }


@pytest.mark.parametrize(
    ("user_verified", "payload"),
    [
        (False, {"checkedAt": "2023-11-14T22:13:20.001Z"}),
        (True, {"checkedAt": "2023-11-14T22:13:20.001Z", "userVerified": True}),
    ],
)
def test_the_checked_payload_says_user_verified_only_when_it_was(user_verified, payload) -> None:
    event = WebAuthNChecked(checked_at_ms=NOW + 1, user_verified=user_verified)
    assert event_type(event) == "session.webAuthN.checked"
    assert stream_payload(event) == payload


# -- the commands -------------------------------------------------------------------------------
def test_a_webauthn_check_is_a_second_factor_and_a_webauthn_challenge_is_a_challenge() -> None:
    assert checks(web_authn=ASSERTION).second_factors is True
    assert checks(password="pw").second_factors is False
    assert Checks().second_factors is False
    assert ASK.any is True
    assert Challenges().any is False


def test_a_refused_webauthn_check_is_not_an_invalid_argument() -> None:
    # COMMAND-Sfw3r is a FailedPrecondition, unlike the OTP checks' COMMAND-S453v
    with pytest.raises(FailedPrecondition) as raised:
        machine.preflight(
            None, CreateSession(checks=checks(web_authn=ASSERTION)), Evidence(), ctx()
        )
    assert not isinstance(raised.value, InvalidArgument)
