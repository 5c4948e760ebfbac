"""Credential rules, pure: passwords, the reset code, email/phone verification, codes, PATs."""

from __future__ import annotations

import pytest
from msgspec.structs import replace

from actors import users as rules
from actors.codes import Code, code_added_payload, code_hash, code_matches, new_code
from actors.errors import FailedPrecondition, InvalidArgument, NotFound
from actors.user_records import Change, Email, Human, Machine, Phone, Profile, User, UserEvent
from tests.test_rules_users import expect

NOW = 1_700_000_000_000
#: The stored form of a code must not change between versions: stored codes would stop
#: matching. sha256("u1:123456").
U1_CODE_HASH = "7d9fc8015440cc386be33b15013e5e5b8dc852852e135ac5f5d6a446ff12b724"
CODE = Code(hash=U1_CODE_HASH, expires_ms=NOW + 60_000)
HUMAN = Human(
    profile=Profile(given_name="Alice", family_name="Liddell"),
    email=Email(address="alice@example.com", code=CODE),
    phone=Phone(number="+41790000000", code=CODE),
    password_hash="$argon2id$old",
    password_change_required=True,
    password_changed_ms=1_500,
    password_code=CODE,
)
ALICE = User(
    id="u1",
    org_id="o1",
    username="alice",
    creation_ms=1_000,
    change_ms=2_000,
    failed_password_attempts=2,
    view_version=3,
    human=HUMAN,
)
ROBOT = User(
    id="m1",
    org_id="o1",
    username="robot",
    creation_ms=1_000,
    change_ms=2_000,
    machine=Machine(name="Robot"),
)


# -- codes ---------------------------------------------------------------------------------


class TestCodes:
    def test_the_hash_is_bound_to_the_user(self):
        assert code_hash("u1", "123456") == U1_CODE_HASH
        assert code_hash("u2", "123456") != U1_CODE_HASH
        assert new_code("u1", "123456", NOW) == Code(hash=U1_CODE_HASH, expires_ms=NOW)

    def test_a_code_matches_until_and_at_its_expiry(self):
        assert code_matches("u1", CODE, "123456", NOW)
        assert code_matches("u1", CODE, "123456", NOW + 60_000)
        assert not code_matches("u1", CODE, "123456", NOW + 60_001)

    def test_a_wrong_code_another_users_code_or_no_code_does_not_match(self):
        assert not code_matches("u1", CODE, "123457", NOW)
        assert not code_matches("u2", CODE, "123456", NOW)
        assert not code_matches("u1", None, "123456", NOW)

    def test_the_added_payload_has_the_lifetime_in_ns_and_never_the_code(self):
        assert code_added_payload(CODE, False, NOW) == {"expiry": 60_000_000_000}
        assert code_added_payload(CODE, True, NOW - 1) == {
            "expiry": 60_001_000_000,
            "codeReturned": True,
        }


# -- passwords -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transition", "error_id"),
    [
        (lambda user: rules.set_password(user, "h", False, NOW), "COMMAND-G8dh3"),
        (lambda user: rules.replace_password_hash(user, "h", NOW), "COMMAND-3n77z"),
        (lambda user: rules.set_password_code(user, CODE, False, NOW), "COMMAND-reset"),
    ],
)
def test_password_transitions_need_an_existing_human(transition, error_id):
    with expect(NotFound, error_id, "Errors.User.NotFound"):
        transition(None)
    with expect(NotFound, error_id, "Errors.User.NotFound"):
        transition(replace(ALICE, state=rules.DELETED))
    with expect(FailedPrecondition, "COMMAND-h5u3s", "Errors.User.NotHuman"):
        transition(ROBOT)


class TestSetPassword:
    def test_a_new_password_resets_failures_and_the_reset_code(self):
        assert rules.set_password(ALICE, "$argon2id$new", False, NOW) == Change(
            replace(
                ALICE,
                change_ms=NOW,
                view_version=4,
                failed_password_attempts=0,
                human=replace(
                    HUMAN,
                    password_hash="$argon2id$new",
                    password_change_required=False,
                    password_changed_ms=NOW,
                    password_code=None,
                ),
            ),
            (UserEvent("user.human.password.changed", {}),),
        )

    def test_a_password_that_must_be_changed_says_so(self):
        change = rules.set_password(ALICE, "$argon2id$new", True, NOW)
        assert change.user.human is not None
        assert change.user.human.password_change_required is True
        assert change.events == (
            UserEvent("user.human.password.changed", {"changeRequired": True}),
        )


def test_a_rehash_changes_only_the_hash():
    assert rules.replace_password_hash(ALICE, "$argon2id$rehashed", NOW) == Change(
        replace(ALICE, change_ms=NOW, human=replace(HUMAN, password_hash="$argon2id$rehashed")),
        (UserEvent("user.human.password.hash.updated"),),
    )


def test_a_reset_code_is_stored_as_its_hash():
    code = Code(hash="new", expires_ms=NOW + 1_000)
    assert rules.set_password_code(ALICE, code, True, NOW) == Change(
        replace(ALICE, change_ms=NOW, human=replace(HUMAN, password_code=code)),
        (
            UserEvent(
                "user.human.password.code.added", {"expiry": 1_000_000_000, "codeReturned": True}
            ),
        ),
    )


class TestCheckPasswordCode:
    def test_the_right_code_in_time_passes(self):
        rules.check_password_code(ALICE, "123456", NOW)
        rules.check_password_code(ALICE, "123456", NOW + 60_000)

    def test_no_code_is_not_found(self):
        for user in (replace(ALICE, human=replace(HUMAN, password_code=None)), ROBOT):
            with expect(FailedPrecondition, "COMMAND-2M9fs", "Errors.User.Code.NotFound"):
                rules.check_password_code(user, "123456", NOW)

    def test_an_expired_code_is_expired_even_if_right(self):
        with expect(FailedPrecondition, "CODE-QvUQ4P", "Errors.User.Code.Expired"):
            rules.check_password_code(ALICE, "123456", NOW + 60_001)

    def test_a_wrong_code_is_invalid(self):
        with expect(InvalidArgument, "CODE-woT0xc", "Errors.User.Code.Invalid"):
            rules.check_password_code(ALICE, "654321", NOW)


# -- email and phone verification ----------------------------------------------------------


def _failed(user: User, event_type: str, change: Change) -> None:
    assert change.user == replace(user, change_ms=NOW)
    assert change.events == (UserEvent(event_type),)
    assert change.error is not None
    error = change.error
    assert (type(error), error.error_id, error.key) == (
        InvalidArgument,
        "COMMAND-eis9R",
        "Errors.User.Code.Invalid",
    )


class TestVerifyEmail:
    def test_the_right_code_verifies_and_is_used_up(self):
        assert rules.verify_email(ALICE, "123456", NOW) == Change(
            replace(
                ALICE,
                change_ms=NOW,
                human=replace(
                    HUMAN, email=Email(address="alice@example.com", verified=True, code=None)
                ),
            ),
            (UserEvent("user.human.email.verified"),),
        )

    @pytest.mark.parametrize(("given", "now_ms"), [("654321", NOW), ("123456", NOW + 60_001)])
    def test_a_wrong_or_expired_code_is_recorded_and_fails(self, given, now_ms):
        change = rules.verify_email(ALICE, given, now_ms)
        assert change.user == replace(ALICE, change_ms=now_ms)
        assert change.events == (UserEvent("user.human.email.verification.failed"),)
        assert change.error is not None
        assert change.error.error_id == "COMMAND-eis9R"

    def test_a_machine_has_no_email_to_verify(self):
        _failed(ROBOT, "user.human.email.verification.failed", rules.verify_email(ROBOT, "1", NOW))

    def test_a_missing_user_has_no_email(self):
        for user in (None, replace(ALICE, state=rules.DELETED)):
            with expect(NotFound, "COMMAND-ieJ2e", "Errors.User.Email.NotFound"):
                rules.verify_email(user, "123456", NOW)


class TestVerifyPhone:
    def test_the_right_code_verifies_and_is_used_up(self):
        assert rules.verify_phone(ALICE, "123456", NOW) == Change(
            replace(
                ALICE,
                change_ms=NOW,
                human=replace(HUMAN, phone=Phone(number="+41790000000", verified=True)),
            ),
            (UserEvent("user.human.phone.verified"),),
        )

    def test_a_wrong_code_is_recorded_and_fails(self):
        _failed(ALICE, "user.human.phone.verification.failed", rules.verify_phone(ALICE, "0", NOW))

    def test_no_phone_or_no_human_fails_the_same_way(self):
        no_phone = replace(ALICE, human=replace(HUMAN, phone=None))
        for user in (no_phone, ROBOT):
            change = rules.verify_phone(user, "123456", NOW)
            _failed(user, "user.human.phone.verification.failed", change)

    def test_a_missing_user_has_no_phone(self):
        for user in (None, replace(ALICE, state=rules.DELETED)):
            with expect(NotFound, "COMMAND-ieJ2e", "Errors.User.Phone.NotFound"):
                rules.verify_phone(user, "123456", NOW)


# -- personal access tokens ----------------------------------------------------------------


def test_a_pat_event_names_the_token_and_its_expiration():
    assert rules.pat_added_event("t1", None) == UserEvent(
        "user.personal.access.token.added", {"tokenId": "t1"}
    )
    assert rules.pat_added_event("t1", 0) == UserEvent(
        "user.personal.access.token.added", {"tokenId": "t1"}
    )
    assert rules.pat_added_event("t1", 1_700_000_000_123) == UserEvent(
        "user.personal.access.token.added",
        {"tokenId": "t1", "expiration": "2023-11-14T22:13:20.123Z"},
    )
