"""Second-factor rules, pure: TOTP registration and codes, OTP SMS / Email, recovery codes."""

from __future__ import annotations

from collections.abc import Callable

import pyotp
import pytest
from msgspec.structs import replace

from actors import user_factors as factors
from actors import users as rules
from actors.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from actors.user_records import (
    DELETED,
    LOCKED,
    Change,
    Email,
    Human,
    Machine,
    Phone,
    Profile,
    SecondFactors,
    Totp,
    User,
)
from tests.test_rules_users import expect

NOW = 1_700_000_000_000
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
STEP = NOW // 1000 // 30
HUMAN = Human(
    profile=Profile(given_name="Alice", family_name="Liddell"),
    email=Email(address="alice@example.com", verified=True),
    phone=Phone(number="+41790000000", verified=True),
    password_hash="$argon2id$hash",
)
ALICE = User(
    id="u1", org_id="o1", username="alice", creation_ms=1_000, change_ms=2_000, human=HUMAN
)
ROBOT = User(
    id="m1",
    org_id="o1",
    username="robot",
    creation_ms=1_000,
    change_ms=2_000,
    machine=Machine(name="Robot"),
)
UNVERIFIED = Totp(sealed_secret="k1.sealed")
VERIFIED = Totp(sealed_secret="k1.sealed", verified=True, last_step=STEP - 5)


def with_factors(user: User = ALICE, **fields: object) -> User:
    assert user.human is not None
    human = replace(user.human, factors=replace(user.human.factors, **fields))
    return replace(user, human=human)


def with_human(**fields: object) -> User:
    return replace(ALICE, human=replace(HUMAN, **fields))


def code_at(step: int) -> str:
    return pyotp.TOTP(SECRET).at(step * 30)


def event_types(change: Change) -> list[str]:
    return [event.type for event in change.events]


# -- TOTP ----------------------------------------------------------------------------------


def test_registering_stores_the_sealed_seed_unverified():
    change = rules.register_totp(ALICE, "k1.sealed", NOW)

    assert change.user.human is not None
    assert change.user.human.factors.totp == UNVERIFIED
    assert change.user.change_ms == NOW
    assert change.user.view_version == ALICE.view_version
    assert event_types(change) == ["user.human.mfa.otp.added"]
    assert change.events[0].payload == {}


def test_registering_again_replaces_an_unverified_seed():
    change = rules.register_totp(with_factors(totp=UNVERIFIED), "k1.other", NOW)

    assert change.user.human is not None
    assert change.user.human.factors.totp == Totp(sealed_secret="k1.other")


@pytest.mark.parametrize(
    ("user", "kind", "error_id", "key"),
    [
        (
            with_factors(totp=VERIFIED),
            AlreadyExists,
            "COMMAND-do9se",
            "Errors.User.MFA.OTP.AlreadyReady",
        ),
        (None, NotFound, "QUERY-Dfbg2", "Errors.User.NotFound"),
        (replace(ALICE, state=DELETED), NotFound, "QUERY-Dfbg2", "Errors.User.NotFound"),
        (ROBOT, FailedPrecondition, "COMMAND-h5u3s", "Errors.User.NotHuman"),
    ],
)
def test_registering_is_refused(user, kind, error_id, key):
    with expect(kind, error_id, key):
        rules.register_totp(user, "k1.sealed", NOW)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_a_code_of_the_current_step_or_a_neighbour_verifies_and_uses_its_step(offset):
    user = with_factors(totp=UNVERIFIED)

    change = rules.verify_totp_registration(user, SECRET, code_at(STEP + offset), NOW)

    assert change.user.human is not None
    assert change.user.human.factors.totp == Totp(
        sealed_secret="k1.sealed", verified=True, last_step=STEP + offset
    )
    assert event_types(change) == ["user.human.mfa.otp.verified"]


@pytest.mark.parametrize(
    ("user", "secret", "code", "kind", "error_id", "key"),
    [
        (
            with_factors(totp=UNVERIFIED),
            SECRET,
            code_at(STEP + 2),
            InvalidArgument,
            "EVENT-8isk2",
            "Errors.User.MFA.OTP.InvalidCode",
        ),
        (
            with_factors(totp=UNVERIFIED),
            SECRET,
            code_at(STEP - 2),
            InvalidArgument,
            "EVENT-8isk2",
            "Errors.User.MFA.OTP.InvalidCode",
        ),
        (
            with_factors(totp=UNVERIFIED),
            SECRET,
            "abcdef",
            InvalidArgument,
            "EVENT-8isk2",
            "Errors.User.MFA.OTP.InvalidCode",
        ),
        (
            with_factors(totp=UNVERIFIED),
            "",
            code_at(STEP),
            InvalidArgument,
            "EVENT-8isk2",
            "Errors.User.MFA.OTP.InvalidCode",
        ),
        (
            ALICE,
            "",
            code_at(STEP),
            NotFound,
            "COMMAND-3Mif9s",
            "Errors.User.MFA.OTP.NotExisting",
        ),
        (None, "", "123456", NotFound, "COMMAND-3Mif9s", "Errors.User.MFA.OTP.NotExisting"),
        (ROBOT, "", "123456", NotFound, "COMMAND-3Mif9s", "Errors.User.MFA.OTP.NotExisting"),
        (
            with_factors(totp=VERIFIED),
            SECRET,
            code_at(STEP),
            FailedPrecondition,
            "COMMAND-qx4ls",
            "Errors.Users.MFA.OTP.AlreadyReady",
        ),
    ],
)
def test_verifying_is_refused(user, secret, code, kind, error_id, key):
    with expect(kind, error_id, key):
        rules.verify_totp_registration(user, secret, code, NOW)


def test_removing_totp_drops_it_verified_or_not():
    for totp in (UNVERIFIED, VERIFIED):
        change = rules.remove_totp(with_factors(totp=totp), NOW)

        assert change.user.human is not None
        assert change.user.human.factors.totp is None
        assert event_types(change) == ["user.human.mfa.otp.removed"]


def test_removing_totp_that_is_not_there_is_not_found():
    with expect(NotFound, "COMMAND-Hd9sd", "Errors.User.MFA.OTP.NotExisting"):
        rules.remove_totp(ALICE, NOW)


def test_an_imported_seed_is_ready_at_once():
    created = rules.new_human(
        rules.HumanSpec(
            user_id="u2",
            org_id="o1",
            username="bob",
            profile=HUMAN.profile,
            email=Email(address="bob@example.com", verified=True),
        ),
        NOW,
    )

    change = rules.import_totp(created, "k1.sealed")

    assert change.user.human is not None
    assert change.user.human.factors.totp == Totp(sealed_secret="k1.sealed", verified=True)
    assert event_types(change) == [
        "user.human.added",
        "user.human.email.verified",
        "user.human.mfa.otp.added",
        "user.human.mfa.otp.verified",
    ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (SECRET, SECRET),
        (SECRET.lower(), SECRET),
        ("JBSWY3DPEHPK3PXPJBSWY3D=", "JBSWY3DPEHPK3PXPJBSWY3D"),
        ("JBSWY3DPEHPK3PXPJBSWY3D", "JBSWY3DPEHPK3PXPJBSWY3D"),
    ],
)
def test_an_imported_seed_is_stored_in_one_form(given, stored):
    assert rules.normalized_totp_secret(given) == stored
    assert pyotp.TOTP(stored).now() == pyotp.TOTP(given).now()


@pytest.mark.parametrize(
    "given",
    [
        "not base32!",
        "JBSW Y3DP",
        "0189",
        "A=B",
        "====",
        "JBSWY3DP",  # valid base32, but 40 bits
        "JBSWY3DPEHPK3PXPJBSWY",  # 104 bits
        "JBSWY3DPEHPK3PXPJBSWY3DPE",  # 25 letters: not a whole base32 quantum
        SECRET + "1",
    ],
)
def test_an_imported_seed_that_is_not_base32_is_invalid(given):
    with pytest.raises(ValidationFailed):
        rules.normalized_totp_secret(given)


def test_the_uri_names_issuer_and_account_for_authenticator_apps():
    uri = rules.totp_uri(SECRET, "alice", "example.com")

    assert uri == f"otpauth://totp/example.com:alice?secret={SECRET}&issuer=example.com"
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.now() == pyotp.TOTP(SECRET).now()


def test_the_issuer_is_the_instance_domain_of_a_generated_org_domain():
    assert rules.totp_issuer(rules.org_domain("ACME Corp", "example.com")) == "example.com"
    assert rules.totp_issuer("localhost") == "localhost"


# -- OTP SMS / Email -----------------------------------------------------------------------

Rule = Callable[[User | None, int], Change]


@pytest.mark.parametrize(
    ("rule", "field", "event"),
    [
        (rules.add_otp_sms, "otp_sms", "user.human.mfa.otp.sms.added"),
        (rules.add_otp_email, "otp_email", "user.human.mfa.otp.email.added"),
    ],
)
def test_adding_an_otp_factor(rule: Rule, field: str, event: str):
    change = rule(ALICE, NOW)

    assert change.user.human is not None
    assert getattr(change.user.human.factors, field) is True
    assert event_types(change) == [event]


@pytest.mark.parametrize(
    ("rule", "field", "event"),
    [
        (rules.remove_otp_sms, "otp_sms", "user.human.mfa.otp.sms.removed"),
        (rules.remove_otp_email, "otp_email", "user.human.mfa.otp.email.removed"),
    ],
)
def test_removing_an_otp_factor(rule: Rule, field: str, event: str):
    change = rule(with_factors(ALICE, **{field: True}), NOW)

    assert change.user.human is not None
    assert getattr(change.user.human.factors, field) is False
    assert event_types(change) == [event]


_READY = "Errors.User.MFA.OTP.AlreadyReady"
_NOT_READY = "Errors.User.MFA.OTP.NotReady"
_MISSING = "Errors.User.MFA.OTP.NotExisting"


@pytest.mark.parametrize(
    ("rule", "user", "kind", "error_id", "key"),
    [
        (rules.add_otp_sms, with_factors(otp_sms=True), AlreadyExists, "COMMAND-Ad3g2", _READY),
        (
            rules.add_otp_sms,
            with_human(phone=None),
            FailedPrecondition,
            "COMMAND-Q54j2",
            _NOT_READY,
        ),
        (
            rules.add_otp_sms,
            with_human(phone=Phone(number="+41790000000")),
            FailedPrecondition,
            "COMMAND-Q54j2",
            _NOT_READY,
        ),
        (rules.add_otp_email, with_factors(otp_email=True), AlreadyExists, "COMMAND-MKL2s", _READY),
        (
            rules.add_otp_email,
            with_human(email=Email(address="alice@example.com")),
            FailedPrecondition,
            "COMMAND-KLJ2d",
            _NOT_READY,
        ),
        (rules.remove_otp_sms, ALICE, NotFound, "COMMAND-Sr3h3", _MISSING),
        (rules.remove_otp_email, ALICE, NotFound, "COMMAND-b312D", _MISSING),
        (rules.add_otp_sms, ROBOT, FailedPrecondition, "COMMAND-h5u3s", "Errors.User.NotHuman"),
        (rules.add_otp_email, None, NotFound, "QUERY-Dfbg2", "Errors.User.NotFound"),
    ],
)
def test_otp_factor_changes_are_refused(
    rule: Rule, user: User | None, kind: type[ServiceError], error_id: str, key: str
):
    with expect(kind, error_id, key):
        rule(user, NOW)


# -- recovery codes ------------------------------------------------------------------------


def test_recovery_codes_are_stored_as_given_and_the_event_only_counts_them():
    change = rules.set_recovery_codes(ALICE, ("k1.a", "k1.b"), NOW)

    assert change.user.human is not None
    assert change.user.human.factors.recovery_codes == ("k1.a", "k1.b")
    assert event_types(change) == ["user.human.mfa.recoverycode.added"]
    assert change.events[0].payload == {"count": 2}


def test_a_new_set_replaces_the_old_one():
    change = rules.set_recovery_codes(with_factors(recovery_codes=("k1.old",)), ("k1.new",), NOW)

    assert change.user.human is not None
    assert change.user.human.factors.recovery_codes == ("k1.new",)
    assert event_types(change) == [
        "user.human.mfa.recoverycode.removed",
        "user.human.mfa.recoverycode.added",
    ]


@pytest.mark.parametrize("count", [0, -1, 11, 100])
def test_a_count_outside_1_to_10_is_invalid(count):
    with expect(InvalidArgument, "COMMAND-7c0nx", "Errors.User.RecoveryCodes.CountInvalid"):
        rules.check_recovery_code_count(count)


@pytest.mark.parametrize("count", [1, 10])
def test_the_count_bounds_are_allowed(count):
    rules.check_recovery_code_count(count)
    rules.set_recovery_codes(ALICE, tuple(f"k1.{i}" for i in range(count)), NOW)


def test_removing_recovery_codes():
    change = rules.remove_recovery_codes(with_factors(recovery_codes=("k1.a",)), NOW)

    assert change.user.human is not None
    assert change.user.human.factors.recovery_codes == ()
    assert event_types(change) == ["user.human.mfa.recoverycode.removed"]


@pytest.mark.parametrize(
    ("user", "kind", "error_id", "key"),
    [
        (ALICE, InvalidArgument, "COMMAND-84rgg", "Errors.User.RecoveryCodes.NotAdded"),
        (
            replace(with_factors(recovery_codes=("k1.a",)), state=LOCKED),
            NotFound,
            "COMMAND-d9u8q",
            "Errors.User.RecoveryCodes.Locked",
        ),
    ],
)
def test_removing_recovery_codes_is_refused(user, kind, error_id, key):
    with expect(kind, error_id, key):
        rules.remove_recovery_codes(user, NOW)


# -- what is ready -------------------------------------------------------------------------

P = "AUTHENTICATION_METHOD_TYPE_"


@pytest.mark.parametrize(
    ("user", "methods"),
    [
        (ALICE, ["PASSWORD"]),
        (with_human(password_hash=""), []),
        (with_factors(totp=UNVERIFIED), ["PASSWORD"]),
        (with_factors(totp=VERIFIED), ["PASSWORD", "TOTP"]),
        (
            with_factors(totp=VERIFIED, otp_sms=True, otp_email=True, recovery_codes=("k1.a",)),
            ["PASSWORD", "TOTP", "OTP_SMS", "OTP_EMAIL", "RECOVERY_CODE"],
        ),
        (ROBOT, []),
    ],
)
def test_only_ready_methods_are_listed(user, methods):
    assert rules.auth_method_types(user) == [P + m for m in methods]


def test_no_event_of_a_factor_change_carries_secret_material():
    user = with_factors(totp=UNVERIFIED)
    changes = [
        rules.register_totp(ALICE, "k1.sealed", NOW),
        rules.verify_totp_registration(user, SECRET, code_at(STEP), NOW),
        rules.set_recovery_codes(ALICE, ("k1.digest",), NOW),
    ]
    for change in changes:
        for event in change.events:
            text = repr(event.payload)
            for secret in ("sealed", "digest", SECRET):
                assert secret not in text


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_the_matching_step_is_the_one_whose_code_was_given(offset):
    assert factors.matching_totp_step(SECRET, code_at(STEP + offset), NOW) == STEP + offset
    assert factors.totp_code(SECRET, STEP + offset) == code_at(STEP + offset)


@pytest.mark.parametrize("length", [23, 26, 32, 40])
def test_the_check_agrees_with_pyotp_for_seeds_of_any_length(length: int):
    """The session check computes codes with cryptography's HOTP; apps and registration use
    pyotp's: both must agree on every seed length (base32 padding) and every skew step."""
    for round_ in range(20):
        secret = pyotp.random_base32(length=max(length, 32))[:length]
        now_s = 1_700_000_000 + round_ * 7919
        for offset in (-1, 0, 1):
            code = pyotp.TOTP(secret).at(now_s + 30 * offset)
            step = factors.matching_totp_step(secret, code, now_s * 1000)
            assert step is not None, (secret, offset)
            assert pyotp.TOTP(secret).at(step * 30) == code
        assert factors.matching_totp_step(
            secret.lower(), pyotp.TOTP(secret).at(now_s), now_s * 1000
        )
        wrong = f"{(int(pyotp.TOTP(secret).at(now_s)) + 1) % 1_000_000:06d}"
        if all(pyotp.TOTP(secret).at(now_s + 30 * o) != wrong for o in (-1, 0, 1)):
            assert factors.matching_totp_step(secret, wrong, now_s * 1000) is None


def test_a_human_starts_without_second_factors():
    assert HUMAN.factors == SecondFactors()
    assert rules.auth_method_types(with_factors(recovery_codes=())) == [P + "PASSWORD"]


# -- exact refusals and the change time of every factor transition (the mutation run's view) --
@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("not base32!", "invalid AddHumanUserRequest.TotpSecret: not base32"),
        ("A" * 25, "invalid AddHumanUserRequest.TotpSecret: not base32"),  # no base32 length
    ],
)
def test_a_bad_imported_seed_says_what_is_wrong(given: str, message: str):
    with pytest.raises(ValidationFailed) as raised:
        factors.normalized_totp_secret(given)
    assert raised.value.message == message


def test_an_imported_seed_keeps_its_letters_up_to_the_padding():
    assert factors.normalized_totp_secret("JBSWY3DPEHPK3PXPJBSWY3DPEX") == (
        "JBSWY3DPEHPK3PXPJBSWY3DPEX"
    )


def test_an_imported_seed_may_carry_base32_padding():
    padded = "JBSWY3DPEHPK3PXPJBSWY3DPEH======"
    assert factors.normalized_totp_secret(padded.lower()) == "JBSWY3DPEHPK3PXPJBSWY3DPEH"


def test_a_machine_user_cannot_import_a_seed():
    change = Change(ROBOT, ())
    with expect(FailedPrecondition, "COMMAND-h5u3s", "Errors.User.NotHuman"):
        rules.import_totp(change, "k1.sealed")


@pytest.mark.parametrize(
    ("transition", "user"),
    [
        (
            lambda u: rules.verify_totp_registration(
                u, SECRET, pyotp.TOTP(SECRET).at(NOW // 1000), NOW
            ),
            "unverified",
        ),
        (lambda u: rules.remove_totp(u, NOW), "verified"),
        (lambda u: rules.add_otp_sms(u, NOW), "plain"),
        (lambda u: rules.remove_otp_sms(u, NOW), "sms"),
        (lambda u: rules.add_otp_email(u, NOW), "plain"),
        (lambda u: rules.remove_otp_email(u, NOW), "email"),
        (lambda u: rules.set_recovery_codes(u, ("k.h1", "k.h2"), NOW), "plain"),
        (lambda u: rules.remove_recovery_codes(u, NOW), "codes"),
    ],
)
def test_every_factor_change_is_stamped_with_its_time(transition, user: str):
    start = {
        "plain": ALICE,
        "unverified": with_factors(totp=UNVERIFIED),
        "verified": with_factors(totp=VERIFIED),
        "sms": with_factors(otp_sms=True),
        "email": with_factors(otp_email=True),
        "codes": with_factors(recovery_codes=("k.h0",)),
    }[user]
    change = transition(start)
    assert change.user.change_ms == NOW
