"""The second-factor session rules, pure: check order, challenges, one use, views, payloads.

Everything the Redis-backed tests in tests/test_second_factors.py show end to end, stated
here against ``actors.machine`` alone, so the mutation run (which keeps only pure tests)
sees each rule.
"""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from actors import machine, url_templates
from actors import users as rules
from actors.commands import (
    Challenges,
    Checks,
    CreateSession,
    Evidence,
    IssuedCode,
    OtpChallenge,
    SetSession,
)
from actors.errors import FailedPrecondition, Internal, InvalidArgument
from actors.events import (
    OtpEmailChallenged,
    OtpEmailChecked,
    OtpSmsChallenged,
    OtpSmsChecked,
    RecoveryCodeChecked,
    TokenSet,
    TotpChecked,
    UserChecked,
    event_type,
    stream_payload,
)
from actors.model import CheckedFactor, Factors, PendingCode
from actors.user_records import SecondFactors, Totp
from actors.views import render
from tests.test_rules_session import ALICE, NOW, USER_CHECK, ctx, session
from tests.test_rules_users import ALICE as ALICE_USER
from tests.test_rules_users import expect

CODE = IssuedCode(plain="12345678", code_hash="kid.hash", expires_ms=NOW + 300_000)
SECOND = ("totp", "otp_sms", "otp_email", "recovery_code")


def checks(**fields: str) -> Checks:
    return replace(Checks(), **fields)


# -- which user, and the ids when there is none ------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "check", "error_id"),
    [
        (FailedPrecondition, checks(password="pw"), "COMMAND-Sfw3f"),
        (FailedPrecondition, checks(totp="123456"), "COMMAND-8N9ds"),
        (InvalidArgument, checks(otp_sms="1"), "COMMAND-S453v"),
        (InvalidArgument, checks(otp_email="1"), "COMMAND-S453v"),
        (InvalidArgument, checks(recovery_code="x"), "COMMAND-4m9s2"),
        (FailedPrecondition, checks(password="pw", totp="123456"), "COMMAND-Sfw3f"),
        (FailedPrecondition, checks(totp="123456", recovery_code="x"), "COMMAND-8N9ds"),
    ],
)
def test_a_check_without_a_user_names_the_first_check_in_zitadels_order(kind, check, error_id):
    with expect(kind, error_id, "Errors.User.UserIDMissing"):
        machine.preflight(None, CreateSession(checks=check), Evidence(), ctx())


@pytest.mark.parametrize(
    ("challenges", "error_id"),
    [
        (Challenges(otp_sms=OtpChallenge(return_code=True)), "COMMAND-JKL3g"),
        (Challenges(otp_email=OtpChallenge()), "COMMAND-JK3gp"),
        (Challenges(otp_sms=OtpChallenge(), otp_email=OtpChallenge()), "COMMAND-JKL3g"),
    ],
)
def test_a_challenge_without_a_user(challenges: Challenges, error_id: str):
    with expect(FailedPrecondition, error_id, "Errors.User.UserIDMissing"):
        machine.preflight(None, CreateSession(challenges=challenges), Evidence(), ctx())


def test_checks_come_before_challenges_when_both_lack_a_user():
    command = CreateSession(
        checks=checks(otp_sms="1"), challenges=Challenges(otp_sms=OtpChallenge())
    )
    with expect(InvalidArgument, "COMMAND-S453v", "Errors.User.UserIDMissing"):
        machine.preflight(None, command, Evidence(), ctx())


@pytest.mark.parametrize("name", SECOND)
def test_the_target_is_the_stored_user_or_the_one_checked_now(name: str):
    stored = session()
    assert machine.preflight(
        stored, SetSession(checks=checks(**{name: "1"})), Evidence(), ctx()
    ) == ("alice")
    new = CreateSession(checks=replace(USER_CHECK, **{name: "1"}))
    assert machine.preflight(None, new, Evidence(user=ALICE), ctx()) == "alice"


def test_nothing_to_verify_has_no_target():
    assert machine.preflight(session(), SetSession(), Evidence(), ctx()) is None
    challenge = SetSession(challenges=Challenges(otp_email=OtpChallenge()))
    assert machine.preflight(session(), challenge, Evidence(), ctx()) == "alice"


# -- events of verified checks -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "event"),
    [
        ("totp", TotpChecked),
        ("otp_sms", OtpSmsChecked),
        ("otp_email", OtpEmailChecked),
        ("recovery_code", RecoveryCodeChecked),
    ],
)
def test_a_verified_check_is_its_event_then_a_new_token(name, event):
    command = SetSession(checks=checks(**{name: "1"}))
    events = machine.decide(session(), command, Evidence(verified=frozenset({name})), ctx())
    assert events[0] == event(checked_at_ms=NOW)
    assert isinstance(events[-1], TokenSet)
    assert len(events) == 2


@pytest.mark.parametrize("name", SECOND)
def test_a_check_the_actor_did_not_verify_is_an_internal_error(name: str):
    others = frozenset(set(SECOND) - {name})
    with expect(Internal, "SESSION-notVerified", "Errors.Internal"):
        machine.decide(
            session(), SetSession(checks=checks(**{name: "1"})), Evidence(verified=others), ctx()
        )


def test_checks_keep_zitadels_order_in_the_events():
    every = checks(totp="1", otp_sms="2", otp_email="3", recovery_code="4")
    command = CreateSession(checks=replace(every, user=USER_CHECK.user))
    events = machine.decide(None, command, Evidence(user=ALICE, verified=frozenset(SECOND)), ctx())
    assert [event_type(e) for e in events] == [
        "session.added",
        "session.user.checked",
        "session.totp.checked",
        "session.otp.sms.checked",
        "session.otp.email.checked",
        "session.recoverycode.checked",
        "session.token.set",
    ]
    assert isinstance(events[1], UserChecked)


# -- challenges --------------------------------------------------------------------------------
def test_a_challenge_stores_the_codes_hash_and_expiry_and_replaces_the_old_one():
    old = session(otp_sms_challenge=PendingCode(code_hash="old", expires_ms=NOW))
    command = SetSession(challenges=Challenges(otp_sms=OtpChallenge(return_code=True)))
    events = machine.decide(old, command, Evidence(otp_sms_code=CODE), ctx())
    assert events[0] == OtpSmsChallenged(
        code_hash="kid.hash", expires_ms=NOW + 300_000, code_returned=True
    )
    after = machine.evolve_all(old, events, session_id="s1", at_ms=NOW)
    assert after is not None
    assert after.otp_sms_challenge == PendingCode(code_hash="kid.hash", expires_ms=NOW + 300_000)
    assert after.otp_email_challenge is None


def test_an_email_challenge_keeps_its_template_and_delivery_kind():
    template = "https://x/{{.Code}}"
    command = SetSession(challenges=Challenges(otp_email=OtpChallenge(url_template=template)))
    [event, _] = machine.decide(session(), command, Evidence(otp_email_code=CODE), ctx())
    assert event == OtpEmailChallenged(
        code_hash="kid.hash", expires_ms=NOW + 300_000, return_code=False, url_template=template
    )
    after = machine.evolve(session(), event, session_id="s1", at_ms=NOW)
    assert after.otp_email_challenge == PendingCode(code_hash="kid.hash", expires_ms=NOW + 300_000)


@pytest.mark.parametrize(
    "challenges",
    [Challenges(otp_sms=OtpChallenge()), Challenges(otp_email=OtpChallenge())],
)
def test_a_challenge_without_a_drawn_code_is_an_internal_error(challenges: Challenges):
    with expect(Internal, "SESSION-noCode", "Errors.Internal"):
        machine.decide(session(), SetSession(challenges=challenges), Evidence(), ctx())


@pytest.mark.parametrize(
    ("event", "factor", "cleared"),
    [
        (OtpSmsChecked(checked_at_ms=NOW), "otp_sms", "otp_sms_challenge"),
        (OtpEmailChecked(checked_at_ms=NOW), "otp_email", "otp_email_challenge"),
    ],
)
def test_a_successful_otp_check_uses_its_challenge_up(event, factor: str, cleared: str):
    pending = PendingCode(code_hash="h", expires_ms=NOW + 1)
    before = session(otp_sms_challenge=pending, otp_email_challenge=pending)
    after = machine.evolve(before, event, session_id="s1", at_ms=NOW)
    assert getattr(after.factors, factor) == CheckedFactor(verified_at_ms=NOW)
    assert getattr(after, cleared) is None
    other = "otp_email_challenge" if cleared == "otp_sms_challenge" else "otp_sms_challenge"
    assert getattr(after, other) == pending


@pytest.mark.parametrize(
    ("event", "factor"),
    [
        (TotpChecked(checked_at_ms=NOW), "totp"),
        (RecoveryCodeChecked(checked_at_ms=NOW), "recovery_code"),
    ],
)
def test_totp_and_recovery_checks_leave_the_challenges_alone(event, factor: str):
    pending = PendingCode(code_hash="h", expires_ms=NOW + 1)
    before = session(otp_sms_challenge=pending, otp_email_challenge=pending)
    after = machine.evolve(before, event, session_id="s1", at_ms=NOW)
    assert getattr(after.factors, factor) == CheckedFactor(verified_at_ms=NOW)
    assert (after.otp_sms_challenge, after.otp_email_challenge) == (pending, pending)


# -- the OTP comparison ------------------------------------------------------------------------
def test_check_otp_in_zitadels_order():
    live = PendingCode(code_hash="right", expires_ms=NOW)
    assert machine.check_otp(live, lambda stored: stored == "right", NOW) is None
    none = machine.check_otp(None, lambda _: True, NOW)
    assert none is not None
    assert (type(none), none.error_id, none.key) == (
        FailedPrecondition,
        "COMMAND-S34gh",
        "Errors.User.Code.NotFound",
    )
    expired = machine.check_otp(live, lambda _: True, NOW + 1)
    assert expired is not None
    assert (type(expired), expired.error_id) == (FailedPrecondition, "CODE-QvUQ4P")
    wrong = machine.check_otp(live, lambda _: False, NOW)
    assert wrong is not None
    assert (type(wrong), wrong.error_id, wrong.key) == (
        InvalidArgument,
        "CODE-woT0xc",
        "Errors.User.Code.Invalid",
    )
    assert machine.counts_as_failure(expired)
    assert machine.counts_as_failure(wrong)
    assert not machine.counts_as_failure(none)


# -- what reads and streams show --------------------------------------------------------------
def test_checked_second_factors_render_with_verified_at_and_count_for_the_bearer():
    factors = replace(
        session().factors,
        totp=CheckedFactor(verified_at_ms=NOW - 3),
        otp_email=CheckedFactor(verified_at_ms=NOW - 1),
    )
    view = render(session(factors=factors))
    assert view.factors is not None
    assert view.factors.totp is not None
    assert view.factors.totp.verified_at == "2023-11-14T22:13:19.997Z"
    assert view.factors.otp_email is not None
    assert (view.factors.otp_sms, view.factors.recovery_code) == (None, None)
    assert factors.second_factor_ms == NOW - 1
    assert Factors().second_factor_ms is None
    only_recovery = Factors(recovery_code=CheckedFactor(verified_at_ms=5))
    assert only_recovery.second_factor_ms == 5


def test_challenged_payloads_carry_the_expiry_never_the_code():
    sms = OtpSmsChallenged(code_hash="secret-hash", expires_ms=NOW + 300_000, code_returned=True)
    assert stream_payload(sms, NOW) == {"expiry": 300_000 * 1_000_000, "codeReturned": True}
    email = OtpEmailChallenged(code_hash="secret-hash", expires_ms=NOW + 60_000, url_template="u")
    assert stream_payload(email, NOW) == {"expiry": 60_000 * 1_000_000, "urlTmpl": "u"}
    returned = OtpEmailChallenged(code_hash="h", expires_ms=NOW, return_code=True)
    assert stream_payload(returned, NOW + 5) == {"expiry": 0, "returnCode": True}
    for checked in (TotpChecked, OtpSmsChecked, OtpEmailChecked, RecoveryCodeChecked):
        assert stream_payload(checked(checked_at_ms=NOW)) == {"checkedAt": "2023-11-14T22:13:20Z"}


@pytest.mark.parametrize(
    ("factors", "ready"),
    [
        (SecondFactors(), False),
        (SecondFactors(totp=Totp(sealed_secret="s")), False),
        (SecondFactors(totp=Totp(sealed_secret="s", verified=True)), True),
        (SecondFactors(otp_sms=True), True),
        (SecondFactors(otp_email=True), True),
        (SecondFactors(recovery_codes=("h",)), True),
    ],
)
def test_a_ready_second_factor_is_what_the_bearer_rule_asks_for(factors, ready: bool):
    assert ALICE_USER.human is not None
    user = replace(ALICE_USER, human=replace(ALICE_USER.human, factors=factors))
    assert rules.has_second_factor(user) is ready
    assert rules.to_view(user).second_factor is ready


def test_a_machine_user_has_no_second_factor():
    machine_user = replace(ALICE_USER, human=None)
    assert rules.has_second_factor(machine_user) is False


def test_unlocking_resets_both_failure_counters():
    locked = replace(
        ALICE_USER, state=rules.LOCKED, failed_password_attempts=3, failed_otp_attempts=2
    )
    unlocked = rules.unlock(locked, NOW).user
    assert (unlocked.failed_password_attempts, unlocked.failed_otp_attempts) == (0, 0)


# -- URL templates ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "rendered"),
    [
        ("https://x/otp?code={{.Code}}", "https://x/otp?code=C"),
        ("{{ .UserID }}/{{.SessionID}}", "U/S"),
        ("a {{- .Code }}", "aC"),
        ("a {{.Code}} b", "a C b"),
        ("{{ .Code -}}  b", "Cb"),
        ("{{.Code -}} b", "Cb"),
        ("{{.Code -}}   ", "C"),
        ("plain", "plain"),
        ("}} alone", "}} alone"),
    ],
)
def test_templates_render_zitadels_fields(template: str, rendered: str):
    values = {"Code": "C", "UserID": "U", "SessionID": "S"}
    assert url_templates.render(template, values) == rendered


@pytest.mark.parametrize(
    "template", ["{{.Nope}}", "{{.Code", "{{ if .Code }}x{{ end }}", "{{}}", "{{.code}}"]
)
def test_other_templates_are_refused(template: str):
    with expect(InvalidArgument, "DOMAIN-oGh5e", "Errors.User.InvalidURLTemplate"):
        url_templates.validate(template)


def test_verification_links_offer_the_org_instead_of_the_session():
    url_templates.validate("{{.OrgID}}", url_templates.USER_FIELDS)
    with expect(InvalidArgument, "DOMAIN-oGh5e", "Errors.User.InvalidURLTemplate"):
        url_templates.validate("{{.SessionID}}", url_templates.USER_FIELDS)
    with expect(InvalidArgument, "DOMAIN-oGh5e", "Errors.User.InvalidURLTemplate"):
        url_templates.validate("{{.OrgID}}")


def test_every_checked_factor_renders():
    every = Factors(
        user=session().factors.user,
        totp=CheckedFactor(verified_at_ms=NOW),
        otp_sms=CheckedFactor(verified_at_ms=NOW),
        otp_email=CheckedFactor(verified_at_ms=NOW),
        recovery_code=CheckedFactor(verified_at_ms=NOW),
    )
    view = render(session(factors=every))
    assert view.factors is not None
    shown = {
        name: getattr(view.factors, name).verified_at
        for name in ("totp", "otp_sms", "otp_email", "recovery_code")
    }
    assert shown == dict.fromkeys(shown, "2023-11-14T22:13:20Z")


def test_an_email_challenge_with_a_returned_code_has_no_template():
    command = SetSession(challenges=Challenges(otp_email=OtpChallenge(return_code=True)))
    [event, _] = machine.decide(session(), command, Evidence(otp_email_code=CODE), ctx())
    assert event == OtpEmailChallenged(
        code_hash="kid.hash", expires_ms=NOW + 300_000, return_code=True, url_template=""
    )


def test_an_expired_code_names_its_key():
    live = PendingCode(code_hash="right", expires_ms=NOW)
    expired = machine.check_otp(live, lambda _: True, NOW + 1)
    assert expired is not None
    assert expired.key == "Errors.User.Code.Expired"


def test_a_challenge_payload_without_an_event_time_counts_from_the_epoch():
    assert stream_payload(OtpSmsChallenged(code_hash="h", expires_ms=7)) == {
        "expiry": 7 * 1_000_000
    }
